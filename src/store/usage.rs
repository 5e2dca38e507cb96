//! Usage: the daily aggregates of the organization's usage reports, which days are stored, and
//! the ingest attempts (schema 11).
//!
//! Only the SQL lives here; `crate::usage_ingest` decides which days to fetch and turns the
//! reports into [`UsageChunk`]s. A chunk is written in one transaction: its days' rows are
//! replaced and the days recorded, so a killed ingest leaves whole days or nothing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::{ToSqlOutput, Value::Null, ValueRef};
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
/// Rows a multi-row `INSERT` of usage writes at once (the last one of a page may hold fewer).
const ROWS_PER_STATEMENT: usize = 32;

/// `insert VALUES (?1, …, ?columns), (…), …` for `rows` rows.
fn values_sql(insert: &str, rows: usize, columns: usize) -> String {
    let mut sql = format!("{insert} VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("?{}", row * columns + column + 1));
        }
        sql.push(')');
    }
    sql
}

/// Text bound without a copy.
fn text(s: &str) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
}

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
    /// `usage.ingested` event naming the days (see [`Store::begin_usage_chunk`], which lets the
    /// rows arrive in parts).
    pub fn write_usage_chunk(&mut self, chunk: &UsageChunk, now: DateTime<Utc>) -> Result<()> {
        let days: Vec<NaiveDate> = chunk.days.iter().map(|(day, _)| *day).collect();
        let mut write = self.begin_usage_chunk(&days)?;
        write.key_days(&chunk.keys)?;
        write.account_days(&chunk.accounts)?;
        write.code_days(&chunk.claude_code)?;
        write.commit(&chunk.days, now)
    }

    /// Starts storing a chunk of `days`: opens its transaction (`BEGIN IMMEDIATE`) and deletes
    /// the rows those days held. The rows are then added in parts and
    /// [`UsageChunkWrite::commit`] records the days; until then nothing is visible, and the
    /// write dropped without a commit rolls everything back, so a chunk is stored whole or not
    /// at all.
    pub fn begin_usage_chunk(&mut self, days: &[NaiveDate]) -> Result<UsageChunkWrite<'_>> {
        self.require_writer()?;
        let path = self.path_text();
        self.conn.execute_batch("BEGIN IMMEDIATE").ctx(&path)?;
        let mut write = UsageChunkWrite {
            store: self,
            path,
            days: BTreeMap::new(),
            counts: (0, 0, 0),
            lost: (Vec::new(), Vec::new()),
            open: true,
        };
        // On an error here the write is dropped, and rolled back.
        write.clear(days)?;
        Ok(write)
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

    /// The usage the rules read: last-use dates (kept per key and per account in
    /// `usage_key_last` and `usage_account_last`, one `MAX(day) … GROUP BY` for Claude Code), the days
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
            key_last_used: self.last_days("SELECT api_key_id, day FROM usage_key_last")?,
            account_last_api: self.last_days("SELECT account_id, day FROM usage_account_last")?,
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
        // A key or account whose last day goes has no day left (`usage_*_last`).
        for table in [
            "usage_key_day",
            "usage_account_day",
            "claude_code_day",
            "usage_key_last",
            "usage_account_last",
        ] {
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

/// The newest day of each id.
fn newest_days<'r>(
    rows: impl Iterator<Item = (&'r str, NaiveDate)>,
) -> HashMap<&'r str, NaiveDate> {
    let mut last: HashMap<&str, NaiveDate> = HashMap::new();
    for (id, day) in rows {
        let newest = last.entry(id).or_insert(day);
        if day > *newest {
            *newest = day;
        }
    }
    last
}

/// A chunk being stored: an open transaction on the writer, see [`Store::begin_usage_chunk`].
pub struct UsageChunkWrite<'s> {
    store: &'s mut Store,
    path: String,
    /// Each day's text, formatted once.
    days: BTreeMap<NaiveDate, String>,
    /// Rows written: (key days, account days, Claude Code days).
    counts: (usize, usize, usize),
    /// The keys and accounts whose last day was one of the chunk's: their `usage_*_last` rows
    /// were removed with the days' rows, and are put back by the rows written or, failing
    /// that, from the older days at the commit.
    lost: (Vec<String>, Vec<String>),
    /// Until committed: dropping the write rolls the transaction back.
    open: bool,
}

impl UsageChunkWrite<'_> {
    fn clear(&mut self, days: &[NaiveDate]) -> Result<()> {
        let conn = &self.store.conn;
        // One pass over each (small) `usage_*_last` table for all the days.
        let texts: Vec<String> = days.iter().map(|d| day_text(*d)).collect();
        let list = serde_json::to_string(&texts).unwrap_or_default();
        for (table, id, lost) in [
            ("usage_key_last", "api_key_id", &mut self.lost.0),
            ("usage_account_last", "account_id", &mut self.lost.1),
        ] {
            let days_in = "day IN (SELECT value FROM json_each(?1))";
            let mut select = conn
                .prepare_cached(&format!("SELECT {id} FROM {table} WHERE {days_in}"))
                .ctx(&self.path)?;
            let ids = select
                .query_map([&list], |row| row.get::<_, String>(0))
                .ctx(&self.path)?;
            for id in ids {
                lost.push(id.ctx(&self.path)?);
            }
            conn.prepare_cached(&format!("DELETE FROM {table} WHERE {days_in}"))
                .ctx(&self.path)?
                .execute([&list])
                .ctx(&self.path)?;
        }
        for table in ["usage_key_day", "usage_account_day", "claude_code_day"] {
            let mut stmt = conn
                .prepare_cached(&format!("DELETE FROM {table} WHERE day = ?1"))
                .ctx(&self.path)?;
            for day in days {
                stmt.execute(params![day_text(*day)]).ctx(&self.path)?;
            }
        }
        Ok(())
    }

    /// Adds API key days (a row already written for the same key and day is replaced).
    pub fn key_days(&mut self, rows: &[KeyDay]) -> Result<()> {
        self.insert_batched(
            "INSERT OR REPLACE INTO usage_key_day (api_key_id, day, account_id, input_tokens, \
               output_tokens, web_search_requests)",
            rows,
            |k| k.day,
            |k, day| {
                [
                    text(&k.api_key_id),
                    text(day),
                    k.account_id
                        .as_deref()
                        .map_or(ToSqlOutput::Owned(Null), text),
                    int(k.input_tokens).into(),
                    int(k.output_tokens).into(),
                    int(k.web_search_requests).into(),
                ]
            },
        )?;
        self.counts.0 += rows.len();
        let last = newest_days(rows.iter().map(|k| (k.api_key_id.as_str(), k.day)));
        self.raise_last("usage_key_last", "api_key_id", &last)
    }

    /// Inserts `rows` with `insert` (`INSERT … (columns)`), up to [`ROWS_PER_STATEMENT`] rows to a
    /// statement: a backfill writes millions, and one statement per row costs more than the row
    /// itself (binding, a cursor, a B-tree descent each). `values` gives a row's `N` values, its
    /// day as the stored text.
    fn insert_batched<T, const N: usize>(
        &mut self,
        insert: &str,
        rows: &[T],
        day_of: impl Fn(&T) -> NaiveDate,
        values: impl for<'v> Fn(&'v T, &'v str) -> [ToSqlOutput<'v>; N],
    ) -> Result<()> {
        let mut days = std::mem::take(&mut self.days);
        for batch in rows.chunks(ROWS_PER_STATEMENT) {
            for row in batch {
                let day = day_of(row);
                days.entry(day).or_insert_with(|| day_text(day));
            }
            let mut stmt = self
                .store
                .conn
                .prepare_cached(&values_sql(insert, batch.len(), N))
                .ctx(&self.path)?;
            let mut at = 1;
            for row in batch {
                let day = days.get(&day_of(row)).map_or("", String::as_str);
                for value in values(row, day) {
                    stmt.raw_bind_parameter(at, value).ctx(&self.path)?;
                    at += 1;
                }
            }
            stmt.raw_execute().ctx(&self.path)?;
        }
        self.days = days;
        Ok(())
    }

    /// Raises the `usage_*_last` rows to the newest days just written.
    fn raise_last(&mut self, table: &str, id: &str, last: &HashMap<&str, NaiveDate>) -> Result<()> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached(&format!(
                "INSERT INTO {table} ({id}, day) VALUES (?1, ?2) \
                 ON CONFLICT ({id}) DO UPDATE SET day = max(day, excluded.day)"
            ))
            .ctx(&self.path)?;
        for (key, day) in last {
            let day = self.days.entry(*day).or_insert_with(|| day_text(*day));
            stmt.execute(params![key, &*day]).ctx(&self.path)?;
        }
        Ok(())
    }

    /// Puts back the `usage_*_last` rows of the keys and accounts whose last day was replaced
    /// without usage on it, from their older days (one scan of the rows, only for a day whose
    /// usage went away when it was fetched again: not expected of the API, but kept exact).
    fn restore_lost(&mut self) -> Result<()> {
        let lost = std::mem::take(&mut self.lost);
        for (table, rows, id, ids) in [
            ("usage_key_last", "usage_key_day", "api_key_id", lost.0),
            (
                "usage_account_last",
                "usage_account_day",
                "account_id",
                lost.1,
            ),
        ] {
            let conn = &self.store.conn;
            let mut present = conn
                .prepare_cached(&format!("SELECT 1 FROM {table} WHERE {id} = ?1"))
                .ctx(&self.path)?;
            let mut missing = Vec::new();
            for key in ids {
                if !present.exists([&key]).ctx(&self.path)? {
                    missing.push(key);
                }
            }
            if missing.is_empty() {
                continue;
            }
            let list = serde_json::to_string(&missing).unwrap_or_default();
            conn.execute(
                &format!(
                    "INSERT INTO {table} ({id}, day) SELECT {id}, max(day) FROM {rows} \
                     WHERE {id} IN (SELECT value FROM json_each(?1)) GROUP BY {id}"
                ),
                [&list],
            )
            .ctx(&self.path)?;
        }
        Ok(())
    }

    /// Adds account days (a row already written for the same account and day is replaced).
    pub fn account_days(&mut self, rows: &[AccountDay]) -> Result<()> {
        self.insert_batched(
            "INSERT OR REPLACE INTO usage_account_day (account_id, day, input_tokens, \
               output_tokens)",
            rows,
            |a| a.day,
            |a, day| {
                [
                    text(&a.account_id),
                    text(day),
                    int(a.input_tokens).into(),
                    int(a.output_tokens).into(),
                ]
            },
        )?;
        self.counts.1 += rows.len();
        let last = newest_days(rows.iter().map(|a| (a.account_id.as_str(), a.day)));
        self.raise_last("usage_account_last", "account_id", &last)
    }

    /// Adds Claude Code days (a row already written for the same actor and day is replaced).
    pub fn code_days(&mut self, rows: &[CodeDay]) -> Result<()> {
        let mut days = std::mem::take(&mut self.days);
        let mut stmt = self
            .store
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO claude_code_day (actor_type, actor, day, sessions, \
                   lines_added, lines_removed, commits, pull_requests) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .ctx(&self.path)?;
        for c in rows {
            let (kind, actor) = c.actor.parts();
            let day = days.entry(c.day).or_insert_with(|| day_text(c.day));
            stmt.execute(params![
                kind,
                actor,
                &*day,
                int(c.sessions),
                int(c.lines_added),
                int(c.lines_removed),
                int(c.commits),
                int(c.pull_requests)
            ])
            .ctx(&self.path)?;
        }
        drop(stmt);
        self.days = days;
        self.counts.2 += rows.len();
        Ok(())
    }

    /// Records the chunk's days (`(day, complete)`), appends its `usage.ingested` event and
    /// commits.
    pub fn commit(mut self, days: &[(NaiveDate, bool)], now: DateTime<Utc>) -> Result<()> {
        self.restore_lost()?;
        let at = ts(&now);
        {
            let mut mark = self
                .store
                .conn
                .prepare_cached(
                    "INSERT INTO usage_days (day, complete, fetched_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (day) DO UPDATE SET complete = excluded.complete, \
                       fetched_at = excluded.fetched_at",
                )
                .ctx(&self.path)?;
            for (day, complete) in days {
                mark.execute(params![day_text(*day), complete, at])
                    .ctx(&self.path)?;
            }
        }
        let texts: Vec<String> = days.iter().map(|(d, _)| day_text(*d)).collect();
        let payload = serde_json::json!({
            "days": texts,
            "complete_days": days.iter().filter(|(_, c)| *c).count(),
            "keys": self.counts.0,
            "accounts": self.counts.1,
            "claude_code": self.counts.2,
        });
        super::events::insert(&self.store.conn, &now, "usage.ingested", payload).ctx(&self.path)?;
        self.store.conn.execute_batch("COMMIT").ctx(&self.path)?;
        self.open = false;
        Ok(())
    }
}

impl Drop for UsageChunkWrite<'_> {
    fn drop(&mut self) {
        if self.open && !self.store.conn.is_autocommit() {
            // Nothing to report to: the error that left the chunk unfinished is being returned.
            let _ = self.store.conn.execute_batch("ROLLBACK");
        }
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
    fn values_sql_numbers_every_row_s_parameters() {
        assert_eq!(
            values_sql("INSERT INTO t (a)", 1, 1),
            "INSERT INTO t (a) VALUES (?1)"
        );
        assert_eq!(
            values_sql("INSERT INTO t (a, b)", 3, 2),
            "INSERT INTO t (a, b) VALUES (?1, ?2), (?3, ?4), (?5, ?6)"
        );
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
