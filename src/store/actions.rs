//! The remediation audit trail.

use super::Context as _;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::findings::from_text;
use super::{parse_opt_ts, parse_ts, ts, Result, Store};
use crate::policy::{Action, SubjectKind};
use crate::policy::{ActionRecord, ActionStatus};

/// What is known about an action before its call.
#[derive(Debug, Clone)]
pub struct NewAction<'a> {
    pub run_id: i64,
    pub action: Action,
    pub subject_kind: SubjectKind,
    pub subject_id: &'a str,
    pub subject: &'a str,
    pub finding: &'a str,
    /// The object as read right before the call, as JSON.
    pub before: Option<&'a str>,
}

/// How an action ended.
#[derive(Debug, Clone)]
pub struct ActionOutcome {
    pub status: ActionStatus,
    pub reason: Option<String>,
    pub http_status: Option<u16>,
    pub request_id: Option<String>,
}

const COLUMNS: &str = "id, run_id, action, subject_kind, subject_id, subject, finding, status, \
    reason, http_status, request_id, before, planned_at, finished_at";

fn action_from_row(row: &Row<'_>) -> rusqlite::Result<ActionRecord> {
    let status: String = row.get(7)?;
    Ok(ActionRecord {
        id: row.get(0)?,
        run_id: row.get(1)?,
        action: from_text(row.get(2)?)?,
        subject_kind: from_text(row.get(3)?)?,
        subject_id: row.get(4)?,
        subject: row.get(5)?,
        finding: row.get(6)?,
        status: ActionStatus::parse(&status).unwrap_or(ActionStatus::Failed),
        reason: row.get(8)?,
        http_status: row.get(9)?,
        request_id: row.get(10)?,
        before: row.get(11)?,
        planned_at: parse_ts(&row.get::<_, String>(12)?)?,
        finished_at: parse_opt_ts(row.get(13)?)?,
    })
}

impl Store {
    /// Writes an action as `planned` (committed at once, before the call is made).
    pub fn action_planned(&self, new: &NewAction<'_>, now: DateTime<Utc>) -> Result<i64> {
        self.insert_action(new, ActionStatus::Planned, None, now)
    }

    /// Writes an action that was decided against right before its call. A skip that repeats
    /// the latest row of the same action on the same finding occurrence (same reason) is not an
    /// event: that row's `last_checked_at` is updated instead, and its id returned.
    pub fn action_skipped(
        &self,
        new: &NewAction<'_>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.require_writer()?;
        let latest: Option<(i64, String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT a.id, a.status, a.reason FROM actions a \
                   LEFT JOIN findings f ON f.fingerprint = a.finding \
                 WHERE a.finding = ?1 AND a.action = ?2 AND a.subject_id = ?3 \
                   AND (f.first_seen IS NULL OR a.planned_at >= f.first_seen) \
                 ORDER BY a.id DESC LIMIT 1",
                params![new.finding, new.action.as_str(), new.subject_id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .ctx(self)?;
        if let Some((id, status, Some(last_reason))) = latest {
            if status == ActionStatus::Skipped.as_str() && last_reason == reason {
                self.conn
                    .execute(
                        "UPDATE actions SET last_checked_at = ?2 WHERE id = ?1",
                        params![id, ts(&now)],
                    )
                    .ctx(self)?;
                return Ok(id);
            }
        }
        self.insert_action(new, ActionStatus::Skipped, Some(reason), now)
    }

    /// When a skipped action was last found skipped again for the same reason (`None` if never).
    pub fn action_last_checked(&self, id: i64) -> Result<Option<DateTime<Utc>>> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT last_checked_at FROM actions WHERE id = ?1",
                [id],
                |row| row.get(0),
            )
            .ctx(self)?;
        text.as_deref().map(parse_ts).transpose().ctx(self)
    }

    fn insert_action(
        &self,
        new: &NewAction<'_>,
        status: ActionStatus,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.require_writer()?;
        let finished = (status != ActionStatus::Planned).then(|| ts(&now));
        let tx = self.conn.unchecked_transaction().ctx(self)?;
        tx.execute(
            "INSERT INTO actions (run_id, action, subject_kind, subject_id, subject, finding, \
                   status, reason, before, planned_at, finished_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                new.run_id,
                new.action.as_str(),
                new.subject_kind.as_str(),
                new.subject_id,
                new.subject,
                new.finding,
                status.as_str(),
                reason,
                new.before,
                ts(&now),
                finished
            ],
        )
        .ctx(self)?;
        let id = tx.last_insert_rowid();
        super::events::insert_action(&tx, id, &now).ctx(self)?;
        tx.commit().ctx(self)?;
        Ok(id)
    }

    /// Records how a planned action ended.
    pub fn action_finished(
        &self,
        id: i64,
        outcome: &ActionOutcome,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.require_writer()?;
        let tx = self.conn.unchecked_transaction().ctx(self)?;
        tx.execute(
            "UPDATE actions SET status = ?2, reason = ?3, http_status = ?4, request_id = ?5, \
                   finished_at = ?6 WHERE id = ?1",
            params![
                id,
                outcome.status.as_str(),
                outcome.reason,
                outcome.http_status,
                outcome.request_id,
                ts(&now)
            ],
        )
        .ctx(self)?;
        super::events::insert_action(&tx, id, &now).ctx(self)?;
        tx.commit().ctx(self)?;
        Ok(())
    }

    /// Actions left `planned` by a process that stopped mid-way.
    pub fn planned_actions(&self) -> Result<Vec<ActionRecord>> {
        self.select_actions("WHERE status = 'planned' ORDER BY id", [])
    }

    /// Every action planned after `since` (all when `None`), oldest first.
    pub fn actions_since(&self, since: Option<DateTime<Utc>>) -> Result<Vec<ActionRecord>> {
        let since = since.map(|t| ts(&t)).unwrap_or_default();
        self.select_actions("WHERE planned_at > ?1 ORDER BY id", [since])
    }

    /// Every action planned from a snapshot after run `after` (all when `None`) up to and
    /// including run `up_to`, oldest first: the actions of a report's period.
    pub fn actions_in_runs(&self, after: Option<i64>, up_to: i64) -> Result<Vec<ActionRecord>> {
        self.select_actions(
            "WHERE run_id > ?1 AND run_id <= ?2 ORDER BY id",
            [after.unwrap_or(0), up_to],
        )
    }

    /// (finding fingerprint, action) of every action that succeeded during the current
    /// occurrence of its finding: after the finding was (last) first seen. A finding that was
    /// resolved and came back is a new occurrence, and may be acted on again.
    pub fn succeeded_actions(&self) -> Result<HashSet<(String, Action)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT a.finding, a.action FROM actions a JOIN findings f \
                   ON f.fingerprint = a.finding \
                 WHERE a.status = 'succeeded' AND a.planned_at >= f.first_seen",
            )
            .ctx(self)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, from_text::<Action>(row.get(1)?)?))
            })
            .ctx(self)?;
        rows.collect::<rusqlite::Result<HashSet<_>>>().ctx(self)
    }

    /// When each invite deletion and member removal that succeeded since `since` was made: the
    /// population orgwarden removed itself, which the population-drop guard must not count.
    pub fn removals_since(&self, since: DateTime<Utc>) -> Result<Vec<(DateTime<Utc>, Action)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT planned_at, action FROM actions WHERE status = 'succeeded' \
                   AND action IN ('delete_invite', 'remove_member') AND planned_at >= ?1 \
                 ORDER BY id",
            )
            .ctx(self)?;
        let rows = stmt
            .query_map([ts(&since)], |row| {
                Ok((
                    parse_ts(&row.get::<_, String>(0)?)?,
                    from_text::<Action>(row.get(1)?)?,
                ))
            })
            .ctx(self)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self)
    }

    fn select_actions<P: rusqlite::Params>(
        &self,
        filter: &str,
        params: P,
    ) -> Result<Vec<ActionRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM actions {filter}"))
            .ctx(self)?;
        let rows = stmt.query_map(params, action_from_row).ctx(self)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self)
    }
}
