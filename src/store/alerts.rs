//! The alert outbox: alerts waiting for (or done with) delivery, per channel.
//!
//! Only the SQL lives here; `crate::alerts` decides what an alert says and when to send it.

use super::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{parse_ts, ts, Result, Store};

/// One pending alert of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub id: i64,
    pub channel: String,
    pub dedup_key: String,
    pub kind: String,
    /// The alert as JSON.
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
}

/// Pending alerts of one channel, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingAlerts {
    pub channel: String,
    pub pending: u64,
    pub oldest: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl Store {
    /// Stores an alert for `channel` unless one with the same `dedup_key` was ever stored for it.
    /// Returns whether it was new.
    pub fn enqueue_alert(
        &self,
        channel: &str,
        dedup_key: &str,
        kind: &str,
        payload: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO alert_outbox
                     (channel, dedup_key, kind, payload, created_at, next_attempt_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![channel, dedup_key, kind, payload, ts(&now)],
            )
            .ctx(self)?;
        Ok(n == 1)
    }

    /// The pending alerts of `channel` whose retry time has come, oldest first.
    pub fn due_alerts(&self, channel: &str, now: DateTime<Utc>) -> Result<Vec<AlertRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, channel, dedup_key, kind, payload, created_at, attempts
                 FROM alert_outbox
                 WHERE channel = ?1 AND status = 'pending' AND next_attempt_at <= ?2
                 ORDER BY id",
            )
            .ctx(self)?;
        let rows = stmt
            .query_map(params![channel, ts(&now)], |row| {
                Ok(AlertRow {
                    id: row.get(0)?,
                    channel: row.get(1)?,
                    dedup_key: row.get(2)?,
                    kind: row.get(3)?,
                    payload: row.get(4)?,
                    created_at: parse_ts(&row.get::<_, String>(5)?)?,
                    attempts: row.get(6)?,
                })
            })
            .ctx(self)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx(self)?;
        Ok(rows)
    }

    /// Marks alerts delivered: they are never sent again.
    pub fn alerts_sent(&mut self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        let ids = serde_json::to_string(ids).unwrap_or_default();
        self.conn
            .execute(
                "UPDATE alert_outbox SET status = 'sent', sent_at = ?2, next_attempt_at = NULL,
                     attempts = attempts + 1, last_error = NULL
                 WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'pending'",
                params![ids, ts(&now)],
            )
            .ctx(self)?;
        Ok(())
    }

    /// Records a failed attempt: tried again at `retry_at`, or never (`None`: refused for good).
    pub fn alerts_attempt_failed(
        &mut self,
        ids: &[i64],
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let ids = serde_json::to_string(ids).unwrap_or_default();
        self.conn
            .execute(
                "UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?2,
                     next_attempt_at = ?3,
                     status = CASE WHEN ?3 IS NULL THEN 'failed' ELSE 'pending' END
                 WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'pending'",
                params![ids, error, retry_at.map(|t| ts(&t))],
            )
            .ctx(self)?;
        Ok(())
    }

    /// Pending alerts per channel.
    pub fn pending_alerts(&self) -> Result<Vec<PendingAlerts>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT channel, COUNT(*), MIN(created_at),
                     (SELECT last_error FROM alert_outbox b WHERE b.channel = a.channel
                        AND b.status = 'pending' AND b.last_error IS NOT NULL
                      ORDER BY b.id DESC LIMIT 1)
                 FROM alert_outbox a WHERE status = 'pending' GROUP BY channel ORDER BY channel",
            )
            .ctx(self)?;
        let rows = stmt
            .query_map([], |row| {
                Ok(PendingAlerts {
                    channel: row.get(0)?,
                    pending: row.get::<_, i64>(1)? as u64,
                    oldest: row
                        .get::<_, Option<String>>(2)?
                        .as_deref()
                        .map(parse_ts)
                        .transpose()?,
                    last_error: row.get(3)?,
                })
            })
            .ctx(self)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx(self)?;
        Ok(rows)
    }

    /// How many alerts of each status a channel has (tests and `status`).
    pub fn alert_counts(&self, channel: &str) -> Result<(u64, u64, u64)> {
        let count = |status: &str| -> Result<u64> {
            self.conn
                .query_row(
                    "SELECT COUNT(*) FROM alert_outbox WHERE channel = ?1 AND status = ?2",
                    params![channel, status],
                    |row| row.get::<_, i64>(0),
                )
                .ctx(self)
                .map(|n| n as u64)
        };
        Ok((count("pending")?, count("sent")?, count("failed")?))
    }
}
