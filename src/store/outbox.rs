//! The durable mail outbox: rendered messages waiting for (or done with) delivery.
//!
//! Only the SQL lives here; `crate::mail` decides when to deliver and what a failure means.

use super::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{parse_opt_ts, parse_ts, ts, Result, Store};

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    /// Not yet accepted by the mail server; tried again at `next_attempt_at`.
    Pending,
    /// Accepted by the mail server; never sent again.
    Sent,
    /// Refused for good (e.g. an unknown recipient); not retried.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> OutboxStatus {
        match text {
            "sent" => OutboxStatus::Sent,
            "failed" => OutboxStatus::Failed,
            _ => OutboxStatus::Pending,
        }
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewOutboxMessage<'a> {
    /// The Message-ID local part (stable: the same message enqueued twice is stored once).
    pub message_id: &'a str,
    pub created_at: DateTime<Utc>,
    pub subject: &'a str,
    /// The envelope sender address.
    pub sender: &'a str,
    /// The envelope recipient addresses.
    pub recipients: &'a [String],
    /// The rendered message (RFC 5322 bytes).
    pub raw: &'a [u8],
}

/// One row of `outbox`, without the message bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxRecord {
    pub id: i64,
    pub message_id: String,
    pub created_at: DateTime<Utc>,
    pub subject: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    /// Size of the rendered message in bytes.
    pub size: u64,
    /// Recipients the server accepted; the message is never sent to them again.
    pub delivered_to: Vec<String>,
    /// Recipients the server refused for good, with its answer; not tried again.
    pub refused: Vec<RefusedRecipient>,
}

impl OutboxRecord {
    /// Recipients neither accepted nor refused yet: the ones the next attempt goes to.
    pub fn remaining_recipients(&self) -> Vec<String> {
        self.recipients
            .iter()
            .filter(|r| {
                !self.delivered_to.contains(r) && !self.refused.iter().any(|x| &x.address == *r)
            })
            .cloned()
            .collect()
    }
}

/// A recipient the mail server refused for good, and its answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefusedRecipient {
    pub address: String,
    pub reason: String,
}

/// The result of one delivery attempt, as recorded by [`Store::outbox_record_attempt`].
#[derive(Debug, Clone)]
pub struct OutboxAttempt<'a> {
    pub at: DateTime<Utc>,
    /// `Sent`, `Failed` (for good), or `Pending` (tried again at `next_attempt_at`).
    pub status: OutboxStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// What went wrong (for a sent message: the recipients refused, if any).
    pub error: Option<&'a str>,
    /// Every recipient accepted so far (earlier attempts included).
    pub delivered_to: &'a [String],
    /// Every recipient refused for good so far (earlier attempts included).
    pub refused: &'a [RefusedRecipient],
}

/// A row with its message bytes, ready to deliver.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub record: OutboxRecord,
    pub raw: Vec<u8>,
}

/// How many messages are in each state (for `status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub sent: u64,
    pub failed: u64,
    /// When the oldest pending message was enqueued.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// When the newest sent message was accepted by the server.
    pub last_sent: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, message_id, created_at, subject, sender, recipients, status, attempts, \
                       next_attempt_at, last_attempt_at, last_error, sent_at, length(raw), \
                       delivered_to, refused";

/// A list as JSON text (serialising plain strings cannot fail).
fn to_json<T: serde::Serialize>(value: &[T]) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

/// The column holding the message bytes when a query adds `raw` after [`COLUMNS`].
const RAW_COLUMN: usize = 15;

fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRecord> {
    let recipients = json_column(row, 5)?;
    Ok(OutboxRecord {
        id: row.get(0)?,
        message_id: row.get(1)?,
        created_at: parse_ts(&row.get::<_, String>(2)?)?,
        subject: row.get(3)?,
        sender: row.get(4)?,
        recipients,
        status: OutboxStatus::parse(&row.get::<_, String>(6)?),
        attempts: row.get(7)?,
        next_attempt_at: parse_opt_ts(row.get(8)?)?,
        last_attempt_at: parse_opt_ts(row.get(9)?)?,
        last_error: row.get(10)?,
        sent_at: parse_opt_ts(row.get(11)?)?,
        size: row.get(12)?,
        delivered_to: json_column(row, 13)?,
        refused: json_column(row, 14)?,
    })
}

impl Store {
    /// Stores a message as pending, due at once. Returns its row id and whether it is new: a
    /// message whose `message_id` is already stored is left as it is (whatever its status).
    pub fn outbox_enqueue(&self, message: &NewOutboxMessage<'_>) -> Result<(i64, bool)> {
        self.require_writer()?;
        let recipients =
            serde_json::to_string(message.recipients).unwrap_or_else(|_| "[]".to_owned());
        let inserted = self
            .conn
            .execute(
                "INSERT INTO outbox (message_id, created_at, subject, sender, recipients, raw, \
                 next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?2) \
                 ON CONFLICT (message_id) DO NOTHING",
                params![
                    message.message_id,
                    ts(&message.created_at),
                    message.subject,
                    message.sender,
                    recipients,
                    message.raw,
                ],
            )
            .ctx(self)?;
        let id = self
            .conn
            .query_row(
                "SELECT id FROM outbox WHERE message_id = ?1",
                [message.message_id],
                |row| row.get(0),
            )
            .ctx(self)?;
        Ok((id, inserted == 1))
    }

    /// Pending messages whose next attempt is due at `now`, oldest first.
    pub fn outbox_due(&self, now: DateTime<Utc>) -> Result<Vec<OutboxMessage>> {
        self.outbox_messages(
            &format!(
                "SELECT {COLUMNS}, raw FROM outbox WHERE status = 'pending' \
                 AND next_attempt_at <= ?1 ORDER BY id"
            ),
            params![ts(&now)],
        )
    }

    /// Every pending message, due or not, oldest first (`outbox --retry`).
    pub fn outbox_pending(&self) -> Result<Vec<OutboxMessage>> {
        self.outbox_messages(
            &format!("SELECT {COLUMNS}, raw FROM outbox WHERE status = 'pending' ORDER BY id"),
            [],
        )
    }

    fn outbox_messages<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
    ) -> Result<Vec<OutboxMessage>> {
        let mut stmt = self.conn.prepare_cached(sql).ctx(self)?;
        let rows = stmt
            .query_map(params, |row| {
                Ok(OutboxMessage {
                    record: record(row)?,
                    raw: row.get(RAW_COLUMN)?,
                })
            })
            .ctx(self)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self)
    }

    /// Records that the server accepted a pending message. Returns false when the message was not
    /// pending (already sent or failed), in which case nothing changes.
    pub fn outbox_mark_sent(&self, id: i64, at: DateTime<Utc>) -> Result<bool> {
        self.require_writer()?;
        let changed = self
            .conn
            .execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?2, last_attempt_at = ?2, \
                 attempts = attempts + 1, next_attempt_at = NULL, last_error = NULL \
                 WHERE id = ?1 AND status = 'pending'",
                params![id, ts(&at)],
            )
            .ctx(self)?;
        Ok(changed == 1)
    }

    /// Records a failed attempt on a pending message: `permanent` marks it failed for good,
    /// otherwise it stays pending until `next_attempt_at`.
    pub fn outbox_mark_failed(
        &self,
        id: i64,
        error: &str,
        at: DateTime<Utc>,
        next_attempt_at: DateTime<Utc>,
        permanent: bool,
    ) -> Result<bool> {
        self.require_writer()?;
        let changed = self
            .conn
            .execute(
                "UPDATE outbox SET status = ?3, last_error = ?4, last_attempt_at = ?2, \
                 attempts = attempts + 1, next_attempt_at = ?5 \
                 WHERE id = ?1 AND status = 'pending'",
                params![
                    id,
                    ts(&at),
                    if permanent { "failed" } else { "pending" },
                    error,
                    (!permanent).then(|| ts(&next_attempt_at)),
                ],
            )
            .ctx(self)?;
        Ok(changed == 1)
    }

    /// Records one delivery attempt on a pending message: its new status, the recipients
    /// accepted and refused so far, and the error. Returns false when the message was not
    /// pending, in which case nothing changes.
    pub fn outbox_record_attempt(&self, id: i64, attempt: &OutboxAttempt<'_>) -> Result<bool> {
        self.require_writer()?;
        let sent = attempt.status == OutboxStatus::Sent;
        let changed = self
            .conn
            .execute(
                "UPDATE outbox SET status = ?3, last_error = ?4, last_attempt_at = ?2, \
                 attempts = attempts + 1, next_attempt_at = ?5, sent_at = ?6, \
                 delivered_to = ?7, refused = ?8 \
                 WHERE id = ?1 AND status = 'pending'",
                params![
                    id,
                    ts(&attempt.at),
                    attempt.status.as_str(),
                    attempt.error,
                    (attempt.status == OutboxStatus::Pending)
                        .then_some(attempt.next_attempt_at.as_ref().map(ts))
                        .flatten(),
                    sent.then(|| ts(&attempt.at)),
                    to_json(attempt.delivered_to),
                    to_json(attempt.refused),
                ],
            )
            .ctx(self)?;
        Ok(changed == 1)
    }

    /// Every message, oldest first, without the message bytes.
    pub fn outbox_list(&self) -> Result<Vec<OutboxRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM outbox ORDER BY id"))
            .ctx(self)?;
        let rows = stmt.query_map([], record).ctx(self)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self)
    }

    /// One message by row id, without its bytes.
    pub fn outbox_get(&self, id: i64) -> Result<Option<OutboxRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"),
                [id],
                record,
            )
            .optional()
            .ctx(self)
    }

    pub fn outbox_counts(&self) -> Result<OutboxCounts> {
        self.conn
            .query_row(
                "SELECT \
                   count(*) FILTER (WHERE status = 'pending'), \
                   count(*) FILTER (WHERE status = 'sent'), \
                   count(*) FILTER (WHERE status = 'failed'), \
                   min(created_at) FILTER (WHERE status = 'pending'), \
                   max(sent_at) FILTER (WHERE status = 'sent') \
                 FROM outbox",
                [],
                |row| {
                    Ok(OutboxCounts {
                        pending: row.get(0)?,
                        sent: row.get(1)?,
                        failed: row.get(2)?,
                        oldest_pending: parse_opt_ts(row.get(3)?)?,
                        last_sent: parse_opt_ts(row.get(4)?)?,
                    })
                },
            )
            .ctx(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn wall_now() -> DateTime<Utc> {
        crate::clock::Clock::now(&crate::clock::SystemClock)
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 3, 8, minute, 0).unwrap()
    }

    fn message<'a>(id: &'a str, recipients: &'a [String]) -> NewOutboxMessage<'a> {
        NewOutboxMessage {
            message_id: id,
            created_at: at(0),
            subject: "weekly report",
            sender: "o@example.com",
            recipients,
            raw: b"Subject: x\r\n\r\nbody\r\n",
        }
    }

    #[test]
    fn lifecycle_of_outbox_messages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let store = Store::open_writer(&path, "test", wall_now()).unwrap();
        let to = vec!["a@example.com".to_owned(), "b@example.com".to_owned()];
        let (a, new) = store.outbox_enqueue(&message("a", &to)).unwrap();
        assert!(new);
        // The same message id again is stored once.
        let (again, new) = store.outbox_enqueue(&message("a", &to)).unwrap();
        assert_eq!((again, new), (a, false));
        let (b, _) = store.outbox_enqueue(&message("b", &to)).unwrap();

        let due = store.outbox_due(at(0)).unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].record.recipients, to);
        assert_eq!(due[0].raw, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(due[0].record.size, due[0].raw.len() as u64);

        assert!(store.outbox_mark_sent(a, at(1)).unwrap());
        // A sent message is never touched again.
        assert!(!store.outbox_mark_sent(a, at(2)).unwrap());
        assert!(!store
            .outbox_mark_failed(a, "late", at(2), at(9), false)
            .unwrap());
        assert!(store
            .outbox_mark_failed(b, "connection refused", at(1), at(6), false)
            .unwrap());
        assert!(store.outbox_due(at(5)).unwrap().is_empty());
        assert_eq!(store.outbox_due(at(6)).unwrap().len(), 1);
        assert_eq!(store.outbox_pending().unwrap().len(), 1);

        let counts = store.outbox_counts().unwrap();
        assert_eq!((counts.pending, counts.sent, counts.failed), (1, 1, 0));
        assert_eq!(counts.oldest_pending, Some(at(0)));

        assert!(store
            .outbox_mark_failed(b, "550 no such user", at(6), at(6), true)
            .unwrap());
        let list = store.outbox_list().unwrap();
        assert_eq!(list[0].status, OutboxStatus::Sent);
        assert_eq!(list[0].attempts, 1);
        assert_eq!(list[0].sent_at, Some(at(1)));
        assert_eq!(list[1].status, OutboxStatus::Failed);
        assert_eq!(list[1].attempts, 2);
        assert_eq!(list[1].next_attempt_at, None);
        assert_eq!(list[1].last_error.as_deref(), Some("550 no such user"));
        assert!(store.outbox_due(at(59)).unwrap().is_empty());
        assert_eq!(store.outbox_get(b).unwrap(), Some(list[1].clone()));
    }

    #[test]
    fn attempts_record_each_recipient() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
        let to = vec![
            "a@example.com".to_owned(),
            "b@example.com".to_owned(),
            "c@example.com".to_owned(),
        ];
        let (id, _) = store.outbox_enqueue(&message("a", &to)).unwrap();
        // a accepted, b refused for good, c deferred: still pending, for c only.
        let refused = vec![RefusedRecipient {
            address: "b@example.com".to_owned(),
            reason: "550 no such user".to_owned(),
        }];
        let delivered = vec!["a@example.com".to_owned()];
        assert!(store
            .outbox_record_attempt(
                id,
                &OutboxAttempt {
                    at: at(1),
                    status: OutboxStatus::Pending,
                    next_attempt_at: Some(at(6)),
                    error: Some("c@example.com deferred: 450 busy"),
                    delivered_to: &delivered,
                    refused: &refused,
                },
            )
            .unwrap());
        let record = store.outbox_get(id).unwrap().unwrap();
        assert_eq!(record.status, OutboxStatus::Pending);
        assert_eq!(record.next_attempt_at, Some(at(6)));
        assert_eq!(record.delivered_to, delivered);
        assert_eq!(record.refused, refused);
        assert_eq!(record.remaining_recipients(), vec!["c@example.com"]);
        assert_eq!(store.outbox_due(at(6)).unwrap()[0].record, record);

        let delivered = vec!["a@example.com".to_owned(), "c@example.com".to_owned()];
        assert!(store
            .outbox_record_attempt(
                id,
                &OutboxAttempt {
                    at: at(6),
                    status: OutboxStatus::Sent,
                    next_attempt_at: None,
                    error: Some("b@example.com refused: 550 no such user"),
                    delivered_to: &delivered,
                    refused: &refused,
                },
            )
            .unwrap());
        let record = store.outbox_get(id).unwrap().unwrap();
        assert_eq!(record.status, OutboxStatus::Sent);
        assert_eq!(
            (record.sent_at, record.next_attempt_at),
            (Some(at(6)), None)
        );
        assert_eq!(record.attempts, 2);
        assert!(record.remaining_recipients().is_empty());
        // Settled: a further attempt changes nothing.
        assert!(!store
            .outbox_record_attempt(
                id,
                &OutboxAttempt {
                    at: at(7),
                    status: OutboxStatus::Failed,
                    next_attempt_at: None,
                    error: None,
                    delivered_to: &[],
                    refused: &[],
                },
            )
            .unwrap());
        assert_eq!(store.outbox_get(id).unwrap().unwrap(), record);
    }

    #[test]
    fn a_reader_cannot_write_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        drop(Store::open_writer(&path, "test", wall_now()).unwrap());
        let reader = Store::open_reader(&path).unwrap();
        let to = vec!["a@example.com".to_owned()];
        assert!(reader.outbox_enqueue(&message("a", &to)).is_err());
        assert!(reader.outbox_mark_sent(1, at(0)).is_err());
        assert_eq!(reader.outbox_list().unwrap(), vec![]);
    }
}
