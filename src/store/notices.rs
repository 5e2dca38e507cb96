//! Owner notices: which finding occurrences have been noticed to their owner.
//!
//! Only the SQL lives here; `crate::alerts::notice` decides who gets which notice.

use super::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{ts, Result, Store};
use crate::alerts::OwnerNotice;

impl Store {
    /// Whether the occurrence `dedup_key` was already noticed to its owner.
    pub fn owner_notice_sent(&self, dedup_key: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM owner_notices WHERE dedup_key = ?1",
                params![dedup_key],
                |_| Ok(()),
            )
            .optional()
            .map(|row| row.is_some())
            .ctx(self)
    }

    /// Records that `notice` was handed to the mail outbox as `message_id`, with its
    /// `owner_notice.sent` event. False when it was recorded already.
    pub fn record_owner_notice(
        &mut self,
        notice: &OwnerNotice,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.require_writer()?;
        let path = self.path_text();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&path)?;
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO owner_notices (dedup_key, fingerprint, subject_kind, \
                     subject_id, recipient, eligible_at, message_id, sent_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    notice.dedup_key,
                    notice.fingerprint,
                    notice.subject_kind.as_str(),
                    notice.subject_id,
                    notice.recipient,
                    ts(&notice.eligible_at),
                    message_id,
                    ts(&now)
                ],
            )
            .ctx(&path)?;
        if n == 1 {
            let payload = serde_json::json!({
                "recipient": notice.recipient,
                "action": notice.action.as_str(),
                "subject_kind": notice.subject_kind.as_str(),
                "subject_id": notice.subject_id,
                "subject": notice.subject,
                "rule": notice.rule,
                "fingerprint": notice.fingerprint,
                "eligible_at": ts(&notice.eligible_at),
                "dry_run": notice.dry_run,
                "message_id": message_id,
            });
            super::events::insert(&tx, &now, "owner_notice.sent", payload).ctx(&path)?;
        }
        tx.commit().ctx(&path)?;
        Ok(n == 1)
    }
}
