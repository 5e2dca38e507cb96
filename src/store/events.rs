//! The event stream: rows of `events`, written by the other store modules in the same
//! transaction as what they describe, read by `orgwarden events` and the `[events] path` sink.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{parse_ts, ts, Context, Result, Store};

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    /// The event's own fields, a JSON object.
    pub payload: serde_json::Map<String, serde_json::Value>,
}

impl EventRecord {
    /// The event as one JSON object: `id`, `at`, `type`, then the payload's fields.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        object.insert("id".into(), self.id.into());
        object.insert("at".into(), ts(&self.at).into());
        object.insert("type".into(), self.kind.clone().into());
        for (key, value) in &self.payload {
            object.insert(key.clone(), value.clone());
        }
        serde_json::Value::Object(object)
    }
}

/// Appends one event through `conn` (a connection or an open transaction).
pub(super) fn insert(
    conn: &Connection,
    at: &DateTime<Utc>,
    kind: &str,
    payload: impl serde::Serialize,
) -> rusqlite::Result<()> {
    EventWriter::new(conn, at)?.write(kind, payload)
}

/// Appends events that share one time through one prepared statement, the time written once
/// and each payload serialised into the same buffer: an audit of a large organization appends
/// tens of thousands.
pub(super) struct EventWriter<'c> {
    statement: rusqlite::CachedStatement<'c>,
    at: String,
    buffer: Vec<u8>,
}

impl<'c> EventWriter<'c> {
    pub(super) fn new(conn: &'c Connection, at: &DateTime<Utc>) -> rusqlite::Result<Self> {
        Ok(EventWriter {
            statement: conn
                .prepare_cached("INSERT INTO events (at, type, payload) VALUES (?1, ?2, ?3)")?,
            at: ts(at),
            buffer: Vec::new(),
        })
    }

    /// Appends one event; its payload is a map of plain values and always serialises.
    pub(super) fn write(
        &mut self,
        kind: &str,
        payload: impl serde::Serialize,
    ) -> rusqlite::Result<()> {
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
            rusqlite::Error::ToSqlConversionFailure(e)
        };
        self.buffer.clear();
        serde_json::to_writer(&mut self.buffer, &payload).map_err(|e| failed(e.into()))?;
        let text = std::str::from_utf8(&self.buffer).map_err(|e| failed(e.into()))?;
        self.statement.execute(params![self.at, kind, text])?;
        Ok(())
    }
}

/// How many events one statement of an [`EventBatch`] appends.
const EVENTS_PER_STATEMENT: usize = 64;

/// Appends events that share one time, [`EVENTS_PER_STATEMENT`] rows to a statement: an audit
/// of a large organization appends tens of thousands, and with `AUTOINCREMENT` every statement
/// also reads and writes the table's sequence, so one statement per event costs a good part
/// of the audit. Events keep the order they were written in (the rows of one `VALUES` list
/// are inserted in order). [`EventBatch::finish`] appends what is pending: an unfinished
/// batch loses its last events, so every path that commits calls it first.
pub(super) struct EventBatch<'c> {
    conn: &'c Connection,
    at: String,
    /// The events written and not yet appended.
    pending: SerializedEvents,
    /// The statement of a whole batch, prepared at its first use.
    full: Option<rusqlite::Statement<'c>>,
}

impl<'c> EventBatch<'c> {
    pub(super) fn new(conn: &'c Connection, at: &DateTime<Utc>) -> EventBatch<'c> {
        EventBatch {
            conn,
            at: ts(at),
            pending: SerializedEvents::default(),
            full: None,
        }
    }

    /// Queues one event (appended at the latest by [`EventBatch::finish`]); its payload is a
    /// map of plain values and always serialises.
    pub(super) fn write(
        &mut self,
        kind: &'static str,
        payload: impl serde::Serialize,
    ) -> rusqlite::Result<()> {
        self.pending
            .push(kind, payload)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        if self.pending.len() == EVENTS_PER_STATEMENT {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends the events of `serialized` after those pending, in their order.
    pub(super) fn write_serialized(
        &mut self,
        serialized: &SerializedEvents,
    ) -> rusqlite::Result<()> {
        self.flush()?;
        let n = serialized.len();
        for start in (0..n).step_by(EVENTS_PER_STATEMENT) {
            self.append(serialized, start..n.min(start + EVENTS_PER_STATEMENT))?;
        }
        Ok(())
    }

    /// Appends every pending event.
    pub(super) fn finish(mut self) -> rusqlite::Result<()> {
        self.flush()
    }

    fn flush(&mut self) -> rusqlite::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        self.append(&pending, 0..pending.len())?;
        // The buffers are kept for the next events.
        self.pending = pending;
        self.pending.clear();
        Ok(())
    }

    /// Appends events `range` of `events` in one statement.
    fn append(
        &mut self,
        events: &SerializedEvents,
        range: std::ops::Range<usize>,
    ) -> rusqlite::Result<()> {
        let n = range.len();
        if n == 0 {
            return Ok(());
        }
        let sql = || {
            let mut sql = String::from("INSERT INTO events (at, type, payload) VALUES ");
            for i in 0..n {
                let sep = if i == 0 { "" } else { ", " };
                sql.push_str(&format!("{sep}(?1, ?{}, ?{})", 2 + 2 * i, 3 + 2 * i));
            }
            sql
        };
        let mut tail;
        let statement = if n == EVENTS_PER_STATEMENT {
            match &mut self.full {
                Some(statement) => statement,
                full => full.insert(self.conn.prepare(&sql())?),
            }
        } else {
            tail = self.conn.prepare(&sql())?;
            &mut tail
        };
        statement.raw_bind_parameter(1, &self.at)?;
        for (i, event) in range.enumerate() {
            let (kind, payload) = events.get(event);
            let text = std::str::from_utf8(payload)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
            statement.raw_bind_parameter(2 + 2 * i, kind)?;
            statement.raw_bind_parameter(3 + 2 * i, text)?;
        }
        statement.raw_execute()?;
        Ok(())
    }
}

/// Events serialised ahead of their [`EventBatch`], e.g. on another thread while the batch's
/// connection writes something else; [`EventBatch::write_serialized`] appends them.
#[derive(Default)]
pub(super) struct SerializedEvents {
    kinds: Vec<&'static str>,
    /// The payloads, one after the other; `ends` marks where each ends.
    payloads: Vec<u8>,
    ends: Vec<usize>,
}

impl SerializedEvents {
    /// Serialises one event's payload (a map of plain values: it always serialises).
    pub(super) fn push(
        &mut self,
        kind: &'static str,
        payload: impl serde::Serialize,
    ) -> serde_json::Result<()> {
        serde_json::to_writer(&mut self.payloads, &payload)?;
        self.kinds.push(kind);
        self.ends.push(self.payloads.len());
        Ok(())
    }

    fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Event `i`: its kind and its payload's text.
    fn get(&self, i: usize) -> (&'static str, &[u8]) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (self.kinds[i], &self.payloads[start..self.ends[i]])
    }

    fn clear(&mut self) {
        self.kinds.clear();
        self.payloads.clear();
        self.ends.clear();
    }
}

/// Appends the event of action `id` as it now stands (`action.<status>`), with the rule of the
/// finding it acts on.
pub(super) fn insert_action(
    conn: &Connection,
    id: i64,
    at: &DateTime<Utc>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO events (at, type, payload) \
         SELECT ?2, 'action.' || a.status, json_object('action', a.action, \
             'subject_kind', a.subject_kind, 'subject_id', a.subject_id, 'subject', a.subject, \
             'rule', (SELECT f.rule FROM findings f WHERE f.fingerprint = a.finding), \
             'fingerprint', a.finding, 'reason', a.reason, 'action_id', a.id, 'run_id', a.run_id) \
         FROM actions a WHERE a.id = ?1",
        params![id, ts(at)],
    )?;
    Ok(())
}

/// Where `since` starts.
#[derive(Debug, Clone, Copy)]
pub enum EventsSince {
    /// Events after this id.
    Id(i64),
    /// Events at or after this time.
    Time(DateTime<Utc>),
}

impl Store {
    /// Events after `since` (all when `None`), oldest first, at most `limit`.
    pub fn events(&self, since: Option<EventsSince>, limit: u32) -> Result<Vec<EventRecord>> {
        let (after, from) = match since {
            None => (0, String::new()),
            Some(EventsSince::Id(id)) => (id, String::new()),
            Some(EventsSince::Time(at)) => (0, ts(&at)),
        };
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, at, type, payload FROM events WHERE id > ?1 AND at >= ?2 \
                 ORDER BY id LIMIT ?3",
            )
            .ctx(self)?;
        let rows = statement
            .query_map(params![after, from, limit], |row| {
                let payload: String = row.get(3)?;
                let payload = match serde_json::from_str(&payload) {
                    Ok(serde_json::Value::Object(map)) => map,
                    _ => serde_json::Map::new(),
                };
                Ok(EventRecord {
                    id: row.get(0)?,
                    at: parse_ts(row.get_ref(1)?.as_str()?)?,
                    kind: row.get(2)?,
                    payload,
                })
            })
            .ctx(self)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self)
    }

    /// The last event id appended to sink `sink` (0 before the first).
    pub fn events_sink_position(&self, sink: &str) -> Result<i64> {
        let last: Option<i64> = self
            .conn
            .query_row(
                "SELECT last_id FROM events_sink WHERE sink = ?1",
                [sink],
                |row| row.get(0),
            )
            .optional()
            .ctx(self)?;
        Ok(last.unwrap_or(0))
    }

    /// Remembers that sink `sink` holds every event up to `last_id`.
    pub fn set_events_sink_position(&self, sink: &str, last_id: i64) -> Result<()> {
        self.require_writer()?;
        self.conn
            .execute(
                "INSERT INTO events_sink (sink, last_id) VALUES (?1, ?2) \
                 ON CONFLICT (sink) DO UPDATE SET last_id = excluded.last_id",
                params![sink, last_id],
            )
            .ctx(self)?;
        Ok(())
    }
}
