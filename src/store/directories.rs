//! Directory sources' reads: each read recorded complete (with its people, in one transaction)
//! or failed (with its message), and the people kept as versions valid from one read to the read
//! where they changed or vanished.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;

use super::Context as _;
use super::{parse_ts, ts, Result, Store};
use crate::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};

/// One read of a source, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryReadRecord {
    pub id: i64,
    pub source: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `complete` or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub n_people: i64,
}

const READ_COLUMNS: &str = "id, source, started_at, finished_at, status, error, n_people";

fn read_from_row(row: &Row<'_>) -> rusqlite::Result<DirectoryReadRecord> {
    Ok(DirectoryReadRecord {
        id: row.get(0)?,
        source: row.get(1)?,
        started_at: parse_ts(&row.get::<_, String>(2)?)?,
        finished_at: parse_ts(&row.get::<_, String>(3)?)?,
        status: row.get(4)?,
        error: row.get(5)?,
        n_people: row.get(6)?,
    })
}

/// A JSON column's value.
fn json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The stored word for a status's kind: a change of kind starts a new "since".
fn status_kind(status: &DirectoryStatus) -> &'static str {
    match status {
        DirectoryStatus::Active => "active",
        DirectoryStatus::Disabled(_) => "disabled",
        DirectoryStatus::Deleted => "deleted",
    }
}

/// Drops the directory reads and people's versions that nothing kept needs, source by source,
/// in the caller's transaction; `horizon` is the stored time before which no kept snapshot
/// was taken. Kept, per source: every read from the one current at `horizon` (the read an audit
/// of the oldest kept snapshot uses) on, and the newest complete read even if older; below that,
/// only the reads a remaining version names: the read where a person's status last changed
/// (`status_since_read`, so "disabled since" survives) and the read where a person vanished
/// (`valid_to` of a version with no successor, so "gone since" survives). A version is dropped
/// when it ended at or before the first kept read and a later version of the same person
/// follows it at once (the versions that say a person vanished stay).
/// Returns (reads, versions) removed.
pub(super) fn prune_directories(
    tx: &rusqlite::Transaction<'_>,
    horizon: &str,
) -> rusqlite::Result<(u64, u64)> {
    let sources: Vec<String> = {
        let mut stmt = tx.prepare("SELECT DISTINCT source FROM directory_reads")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let (mut reads, mut versions) = (0, 0);
    for source in sources {
        let anchor: Option<i64> = tx.query_row(
            "SELECT max(id) FROM directory_reads WHERE source = ?1 AND finished_at <= ?2",
            params![source, horizon],
            |r| r.get(0),
        )?;
        let Some(anchor) = anchor else {
            continue;
        };
        let newest_complete: Option<i64> = tx.query_row(
            "SELECT max(id) FROM directory_reads WHERE source = ?1 AND status = 'complete'",
            [&source],
            |r| r.get(0),
        )?;
        let keep_from = newest_complete.map_or(anchor, |id| id.min(anchor));
        versions += tx.execute(
            "DELETE FROM directory_people AS p WHERE p.source = ?1 AND p.valid_to IS NOT NULL \
               AND p.valid_to <= ?2 AND EXISTS (SELECT 1 FROM directory_people q \
                 WHERE q.source = p.source AND q.person_id = p.person_id \
                   AND q.valid_from = p.valid_to)",
            params![source, keep_from],
        )? as u64;
        reads += tx.execute(
            "DELETE FROM directory_reads WHERE source = ?1 AND id < ?2 \
               AND id NOT IN (SELECT status_since_read FROM directory_people WHERE source = ?1) \
               AND id NOT IN (SELECT valid_to FROM directory_people \
                 WHERE source = ?1 AND valid_to IS NOT NULL)",
            params![source, keep_from],
        )? as u64;
    }
    Ok((reads, versions))
}

impl Store {
    /// Records one read of `source`: complete with its listing, or failed with the message.
    /// Returns the read's id.
    pub fn record_directory_read(
        &mut self,
        source: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        result: std::result::Result<&DirectoryListing, &str>,
    ) -> Result<i64> {
        self.require_writer()?;
        let path = self.path_text();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&path)?;
        let (status, error, n_people, assigned) = match result {
            Ok(listing) => (
                "complete",
                None,
                listing.people.len() as i64,
                listing
                    .assigned
                    .as_ref()
                    .map(|a| serde_json::to_string(a).unwrap_or_else(|_| "[]".to_owned())),
            ),
            Err(message) => ("failed", Some(message), 0, None),
        };
        tx.execute(
            "INSERT INTO directory_reads (source, started_at, finished_at, status, error, \
                 n_people, assigned) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                source,
                ts(&started_at),
                ts(&finished_at),
                status,
                error,
                n_people,
                assigned
            ],
        )
        .ctx(&path)?;
        let read_id = tx.last_insert_rowid();
        if let Ok(listing) = result {
            // The current versions: person id -> (valid_from, status kind, since, data).
            let mut current: HashMap<String, (i64, String, i64, String)> = HashMap::new();
            {
                let mut stmt = tx
                    .prepare(
                        "SELECT person_id, valid_from, status, status_since_read, data \
                         FROM directory_people WHERE source = ?1 AND valid_to IS NULL",
                    )
                    .ctx(&path)?;
                let mut rows = stmt.query([source]).ctx(&path)?;
                while let Some(row) = rows.next().ctx(&path)? {
                    current.insert(
                        row.get(0).ctx(&path)?,
                        (
                            row.get(1).ctx(&path)?,
                            row.get(2).ctx(&path)?,
                            row.get(3).ctx(&path)?,
                            row.get(4).ctx(&path)?,
                        ),
                    );
                }
            }
            let mut close = tx
                .prepare(
                    "UPDATE directory_people SET valid_to = ?4 \
                     WHERE source = ?1 AND person_id = ?2 AND valid_from = ?3",
                )
                .ctx(&path)?;
            let mut put = tx
                .prepare(
                    "INSERT INTO directory_people (source, person_id, valid_from, status, \
                         status_since_read, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .ctx(&path)?;
            let mut listed = std::collections::HashSet::new();
            for person in &listing.people {
                if !listed.insert(person.id.as_str()) {
                    continue;
                }
                let data = serde_json::to_string(person).unwrap_or_default();
                let kind = status_kind(&person.status);
                let since = match current.get(&person.id) {
                    Some((_, _, _, old)) if *old == data => continue,
                    Some((from, old_kind, since, _)) => {
                        close
                            .execute(params![source, person.id, from, read_id])
                            .ctx(&path)?;
                        if old_kind == kind {
                            *since
                        } else {
                            read_id
                        }
                    }
                    None => read_id,
                };
                put.execute(params![source, person.id, read_id, kind, since, data])
                    .ctx(&path)?;
            }
            for (id, (from, ..)) in &current {
                if !listed.contains(id.as_str()) {
                    close
                        .execute(params![source, id, from, read_id])
                        .ctx(&path)?;
                }
            }
        }
        tx.commit().ctx(&path)?;
        Ok(read_id)
    }

    /// The latest read of `source` finished at or before `at` (complete ones only when
    /// `complete_only`).
    pub fn directory_read_at(
        &self,
        source: &str,
        at: DateTime<Utc>,
        complete_only: bool,
    ) -> Result<Option<DirectoryReadRecord>> {
        let filter = if complete_only {
            "AND status = 'complete'"
        } else {
            ""
        };
        self.conn
            .query_row(
                &format!(
                    "SELECT {READ_COLUMNS} FROM directory_reads \
                     WHERE source = ?1 AND finished_at <= ?2 {filter} ORDER BY id DESC LIMIT 1"
                ),
                params![source, ts(&at)],
                read_from_row,
            )
            .optional()
            .ctx(self)
    }

    /// The reads of every source, newest first.
    pub fn directory_reads(&self, limit: u32) -> Result<Vec<DirectoryReadRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {READ_COLUMNS} FROM directory_reads ORDER BY id DESC LIMIT ?1"
            ))
            .ctx(self)?;
        let rows = stmt.query_map([limit], read_from_row).ctx(self)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self)
    }

    /// The listing a complete read saw, and for each person (by directory id) when orgwarden's
    /// reads first showed them in their current status.
    pub fn directory_listing(
        &self,
        read: &DirectoryReadRecord,
    ) -> Result<(DirectoryListing, HashMap<String, DateTime<Utc>>)> {
        let assigned: Option<String> = self
            .conn
            .query_row(
                "SELECT assigned FROM directory_reads WHERE id = ?1",
                [read.id],
                |r| r.get(0),
            )
            .ctx(self)?;
        // The reads the people's statuses date from: a few per source, each looked up and
        // parsed once (not once per person).
        let mut read_time = self
            .conn
            .prepare("SELECT finished_at FROM directory_reads WHERE id = ?1")
            .ctx(self)?;
        let mut read_times: HashMap<i64, Option<DateTime<Utc>>> = HashMap::new();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.data, p.status_since_read FROM directory_people p \
                 WHERE p.source = ?1 AND p.valid_from <= ?2 \
                   AND (p.valid_to IS NULL OR p.valid_to > ?2) ORDER BY p.person_id",
            )
            .ctx(self)?;
        let mut rows = stmt.query(params![read.source, read.id]).ctx(self)?;
        let capacity = usize::try_from(read.n_people).unwrap_or(0);
        let mut people = Vec::with_capacity(capacity);
        let mut since = HashMap::with_capacity(capacity);
        while let Some(row) = rows.next().ctx(self)? {
            let since_read: i64 = row.get(1).ctx(self)?;
            let seen = match read_times.get(&since_read) {
                Some(&seen) => seen,
                None => {
                    let text: Option<String> = read_time
                        .query_row([since_read], |r| r.get(0))
                        .optional()
                        .ctx(self)?;
                    let seen = text.as_deref().map(parse_ts).transpose().ctx(self)?;
                    read_times.insert(since_read, seen);
                    seen
                }
            };
            // A version whose status read is gone is not listed (as a join on it would not).
            let Some(seen) = seen else {
                continue;
            };
            // The JSON is parsed where SQLite holds it, not copied into a String first.
            let data = row
                .get_ref(0)
                .ctx(self)?
                .as_str()
                .map_err(rusqlite::Error::from)
                .ctx(self)?;
            let person: DirectoryPerson = json(data).ctx(self)?;
            since.insert(person.id.clone(), seen);
            people.push(person);
        }
        let assigned = match assigned {
            Some(text) => Some(json(&text).ctx(self)?),
            None => None,
        };
        Ok((DirectoryListing { people, assigned }, since))
    }

    /// The people of `source` who vanished from its reads, with the read time they were first
    /// missing, up to read `read_id`.
    pub fn directory_departures(
        &self,
        source: &str,
        read_id: i64,
    ) -> Result<Vec<(DirectoryPerson, DateTime<Utc>)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.data, r.finished_at FROM directory_people p \
                 JOIN directory_reads r ON r.id = p.valid_to \
                 WHERE p.source = ?1 AND p.valid_to <= ?2 AND NOT EXISTS ( \
                   SELECT 1 FROM directory_people q WHERE q.source = p.source \
                     AND q.person_id = p.person_id AND q.valid_from = p.valid_to) \
                 ORDER BY r.id",
            )
            .ctx(self)?;
        let mut rows = stmt.query(params![source, read_id]).ctx(self)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().ctx(self)? {
            let data: String = row.get(0).ctx(self)?;
            let person: DirectoryPerson = json(&data).ctx(self)?;
            out.push((
                person,
                parse_ts(&row.get::<_, String>(1).ctx(self)?).ctx(self)?,
            ));
        }
        Ok(out)
    }
}
