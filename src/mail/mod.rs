//! Mail: building messages, delivering them, and the durable outbox.
//!
//! **Invariant:** this is the only module that speaks SMTP. A message meant to reach someone is
//! first stored in the outbox (SQLite, through `store`), and only then tried: a crash or an
//! unreachable server never loses it. A message the server accepted is marked sent and never sent
//! again; one the server refused for good (an unknown recipient) is marked failed; any other
//! failure (connection, TLS, login, a 4xx answer) keeps it pending, tried again after a backoff of
//! 5 minutes doubling up to 6 hours. Each message carries a stable `Message-ID`, so the one case
//! that can still repeat a message (a crash between the server's acceptance and the database
//! update) is recognisable by the receiver.

mod transport;

use std::time::SystemTime;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::Message;

pub use transport::{deliver, envelope, envelope_for, MailError};

use crate::config::MailConfig;
use crate::output::Tabular;
use crate::store::{NewOutboxMessage, OutboxMessage, OutboxRecord, Store};

/// A message to send: a text and an HTML rendering of the same content, and attachments.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: String,
    /// A MIME type, e.g. `text/csv; charset=utf-8`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The domain part of every Message-ID orgwarden makes.
pub const MESSAGE_ID_DOMAIN: &str = "orgwarden";

/// Checks a Message-ID local part: 1 to 200 of `A-Z a-z 0-9 . _ + -`.
fn check_message_id(id: &str) -> anyhow::Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
        && !id.starts_with('.')
        && !id.ends_with('.')
        && !id.contains("..");
    anyhow::ensure!(
        valid,
        "message id {id:?} must be 1 to 200 of A-Z a-z 0-9 . _ + - (no leading, trailing or double dot)"
    );
    Ok(())
}

/// The `Message-ID` header value for a local part: `<id@orgwarden>`.
pub fn message_id_header(id: &str) -> String {
    format!("<{id}@{MESSAGE_ID_DOMAIN}>")
}

/// A subject made safe for a header: every control character (CR, LF, tab, NEL, ...) and line
/// or paragraph separator becomes a space, runs of spaces become one, and the ends are trimmed.
/// lettre encodes the rest (RFC 2047).
pub fn clean_subject(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for c in subject.chars() {
        let c = if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            ' '
        } else {
            c
        };
        if c == ' ' && out.ends_with(' ') {
            continue;
        }
        out.push(c);
    }
    out.trim_matches(' ').to_owned()
}

/// Renders a message: `multipart/mixed` holding a `multipart/alternative` (text/plain, then
/// text/html, both UTF-8) and then each attachment (base64). `message_id` is the local part of
/// the Message-ID (see [`message_id_header`]); From and To come from the configuration.
pub fn build_message(
    config: &MailConfig,
    outgoing: &Outgoing,
    message_id: &str,
    date: DateTime<Utc>,
) -> anyhow::Result<Vec<u8>> {
    build_message_to(config, &config.to, outgoing, message_id, date)
}

fn build_message_to(
    config: &MailConfig,
    to: &[Mailbox],
    outgoing: &Outgoing,
    message_id: &str,
    date: DateTime<Utc>,
) -> anyhow::Result<Vec<u8>> {
    check_message_id(message_id)?;
    let mut builder = Message::builder()
        .message_id(Some(message_id_header(message_id)))
        .date(SystemTime::from(date))
        .from(config.from.clone())
        .subject(clean_subject(&outgoing.subject));
    for mailbox in to {
        builder = builder.to(mailbox.clone());
    }
    let alternative = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(outgoing.text.clone()),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(outgoing.html.clone()),
        );
    let mut mixed = MultiPart::mixed().multipart(alternative);
    for attachment in &outgoing.attachments {
        let content_type = ContentType::parse(&attachment.content_type).with_context(|| {
            format!(
                "attachment {:?}: {:?} is not a MIME type",
                attachment.filename, attachment.content_type
            )
        })?;
        let body =
            Body::new_with_encoding(attachment.bytes.clone(), ContentTransferEncoding::Base64)
                .map_err(|_| {
                    anyhow::anyhow!("attachment {:?}: cannot encode", attachment.filename)
                })?;
        mixed = mixed.singlepart(
            lettre::message::Attachment::new(clean_subject(&attachment.filename))
                .body(body, content_type),
        );
    }
    let message = builder
        .multipart(mixed)
        .context("cannot build the message")?;
    Ok(message.formatted())
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxSummary {
    /// Messages tried.
    pub attempted: u32,
    /// Accepted by the server.
    pub sent: u32,
    /// Still pending, tried again later.
    pub retrying: u32,
    /// Refused for good.
    pub failed: u32,
    /// One line per failed attempt: `message_id: error`.
    pub errors: Vec<String>,
}

/// The wait after `attempts` failed attempts (at least 1): 5 minutes, doubling, at most 6 hours.
pub fn backoff(attempts: u32) -> chrono::Duration {
    let cap = chrono::Duration::hours(6);
    let exponent = attempts.saturating_sub(1).min(16);
    let wait = chrono::Duration::minutes(5) * 2_i32.pow(exponent);
    wait.min(cap)
}

/// Delivers every pending message that is due at `now` and records each result.
///
/// Takes `&mut Store` (not `&Store`) so that the future is `Send`: a SQLite connection may move
/// between threads but not be shared.
pub async fn flush_outbox(
    config: &MailConfig,
    store: &mut Store,
    now: DateTime<Utc>,
) -> anyhow::Result<OutboxSummary> {
    let due = store.outbox_due(now)?;
    deliver_all(config, store, due, now).await
}

/// Delivers every pending message now, whatever its backoff (`orgwarden outbox --retry`).
pub async fn retry_outbox(
    config: &MailConfig,
    store: &mut Store,
    now: DateTime<Utc>,
) -> anyhow::Result<OutboxSummary> {
    let pending = store.outbox_pending()?;
    deliver_all(config, store, pending, now).await
}

async fn deliver_all(
    config: &MailConfig,
    store: &mut Store,
    messages: Vec<OutboxMessage>,
    now: DateTime<Utc>,
) -> anyhow::Result<OutboxSummary> {
    let mut summary = OutboxSummary::default();
    for message in messages {
        let record = &message.record;
        summary.attempted += 1;
        let result = match envelope_for(&record.sender, &record.recipients) {
            Ok(envelope) => deliver(config, &envelope, &message.raw).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => {
                store.outbox_mark_sent(record.id, now)?;
                summary.sent += 1;
                tracing::info!(
                    message_id = %record.message_id,
                    attempt = record.attempts + 1,
                    "mail delivered"
                );
            }
            Err(error) => {
                let attempts = record.attempts + 1;
                let permanent = error.is_permanent();
                let next = now + backoff(attempts);
                let text = error.to_string();
                store.outbox_mark_failed(record.id, &text, now, next, permanent)?;
                if permanent {
                    summary.failed += 1;
                    tracing::error!(message_id = %record.message_id, attempt = attempts, error = %text, "mail refused for good; not retried");
                } else {
                    summary.retrying += 1;
                    tracing::warn!(message_id = %record.message_id, attempt = attempts, next_attempt_at = %crate::org::ts(&next), error = %text, "mail not delivered; will retry");
                }
                summary
                    .errors
                    .push(format!("{}: {text}", record.message_id));
            }
        }
    }
    Ok(summary)
}

/// Renders `outgoing` for the configured recipients, stores it in the outbox (before any
/// attempt), then delivers everything due. Returns the message's outbox row id and what the
/// flush did; the message's own fate is in `store.outbox_get(id)`. Enqueueing a `message_id`
/// that is already stored does not store or send it again.
pub async fn enqueue_and_flush(
    config: &MailConfig,
    store: &mut Store,
    outgoing: &Outgoing,
    message_id: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<(i64, OutboxSummary)> {
    let raw = build_message(config, outgoing, message_id, now)?;
    let recipients: Vec<String> = config.to.iter().map(|m| m.email.to_string()).collect();
    let (id, _new) = store.outbox_enqueue(&NewOutboxMessage {
        message_id,
        created_at: now,
        subject: &clean_subject(&outgoing.subject),
        sender: config.from.email.as_ref(),
        recipients: &recipients,
        raw: &raw,
    })?;
    let summary = flush_outbox(config, store, now).await?;
    Ok((id, summary))
}

/// Builds a short test message for `to` and delivers it at once, outside the outbox. Returns the
/// Message-ID local part used.
pub async fn send_test_email(
    config: &MailConfig,
    to: &Mailbox,
    now: DateTime<Utc>,
) -> Result<String, MailError> {
    let message_id = format!(
        "test-{}-{:08x}",
        now.format("%Y%m%dT%H%M%SZ"),
        fastrand::u32(..)
    );
    let outgoing = Outgoing {
        subject: "orgwarden test message".to_owned(),
        text: format!(
            "This is a test message from orgwarden, sent {}.\n\nMail delivery works.\n",
            now.to_rfc2822()
        ),
        html: format!(
            "<p>This is a test message from orgwarden, sent {}.</p><p>Mail delivery works.</p>",
            now.to_rfc2822()
        ),
        attachments: Vec::new(),
    };
    let raw = build_message_to(
        config,
        std::slice::from_ref(to),
        &outgoing,
        &message_id,
        now,
    )
    .map_err(|e| MailError::Config(format!("{e:#}")))?;
    let envelope = envelope_for(config.from.email.as_ref(), &[to.email.to_string()])?;
    deliver(config, &envelope, &raw).await?;
    Ok(message_id)
}

impl Tabular for OutboxRecord {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "message_id",
        "subject",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "sent_at",
    ];
    fn cells(&self) -> Vec<String> {
        let time = |t: &Option<DateTime<Utc>>| t.as_ref().map(crate::org::ts).unwrap_or_default();
        vec![
            self.id.to_string(),
            self.message_id.clone(),
            self.subject.clone(),
            self.status.as_str().to_owned(),
            self.attempts.to_string(),
            time(&self.next_attempt_at),
            self.last_error.clone().unwrap_or_default(),
            time(&self.sent_at),
        ]
    }
}

#[cfg(test)]
mod tests;
