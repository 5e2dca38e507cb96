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
//!
//! Recipients are kept apart: one the server refuses for good is recorded (and named) and the
//! others still get the message, which is sent once every recipient is settled and at least one
//! accepted it, and failed when every recipient was refused. A message larger than
//! `mail.max_message_bytes` is made to fit first: attachments zipped, or left out with a note
//! naming where they are kept.

mod transport;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::Message;

pub use transport::{
    deliver, deliver_each, envelope, envelope_for, list_refused, Delivery, MailError,
};

use crate::config::MailConfig;
use crate::output::Tabular;
use crate::store::{
    NewOutboxMessage, OutboxAttempt, OutboxMessage, OutboxRecord, OutboxStatus, RefusedRecipient,
    Store,
};

/// A message to send: a text and an HTML rendering of the same content, and attachments.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<Attachment>,
    /// Where the attachments are kept on the server (the report's folder), named in the message
    /// when they are too large to attach.
    pub files_dir: Option<PathBuf>,
}

impl Outgoing {
    /// A short message without attachments: the text, and as HTML the same text escaped in a
    /// `<pre>` (alerts and owner notices).
    pub fn plain(subject: String, text: String) -> Outgoing {
        let html = format!("<pre>{}</pre>", crate::report::escape_html(&text));
        Outgoing {
            subject,
            text,
            html,
            attachments: Vec::new(),
            files_dir: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: String,
    /// A MIME type, e.g. `text/csv; charset=utf-8`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The domain part used when the sender's domain cannot be used (not expressible in ASCII).
pub const FALLBACK_MESSAGE_ID_DOMAIN: &str = "orgwarden.invalid";

/// The domain part of the Message-IDs orgwarden makes: the sender's (`mail.from`) domain, in
/// ASCII (an internationalised domain in its `xn--` form).
pub fn message_id_domain(config: &MailConfig) -> String {
    let domain = config.from.email.domain();
    match idna::domain_to_ascii(domain) {
        Ok(ascii) if !ascii.is_empty() => ascii,
        _ if domain.is_ascii() && !domain.is_empty() => domain.to_owned(),
        _ => FALLBACK_MESSAGE_ID_DOMAIN.to_owned(),
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): the message is automatic, so vacation and other
/// automatic responders should not answer it.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

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

/// The `Message-ID` header value for a local part and a domain: `<id@domain>`.
pub fn message_id_header(id: &str, domain: &str) -> String {
    format!("<{id}@{domain}>")
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
/// the Message-ID (see [`message_id_header`]; the domain is [`message_id_domain`]); From and To
/// come from the configuration. The message is marked `Auto-Submitted: auto-generated`. The
/// message is built as given: [`render`] is the one that makes it fit the size limit.
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
        .message_id(Some(message_id_header(
            message_id,
            &message_id_domain(config),
        )))
        .header(AutoSubmitted)
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

/// How a message was made to fit `mail.max_message_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Sent as given.
    AsIs,
    /// The attachments were over `mail.zip_over_bytes` and went as one `report.zip`.
    Zipped,
    /// Still over `mail.max_message_bytes`: sent without attachments, with a note naming
    /// `files_dir`.
    WithoutAttachments,
}

/// A message ready to store: its bytes and how it was made to fit.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub raw: Vec<u8>,
    pub fit: Fit,
}

/// The name of the single attachment that replaces many large ones.
pub const ZIP_NAME: &str = "report.zip";

/// Renders `outgoing` for the configured recipients within the configured size: attachments
/// adding up to more than `mail.zip_over_bytes` are zipped into one [`ZIP_NAME`]; a message still
/// larger than `mail.max_message_bytes` is sent without them, and both bodies say so and name
/// `outgoing.files_dir`. (A message whose bodies alone exceed the limit is still rendered; the
/// server decides.)
pub fn render(
    config: &MailConfig,
    outgoing: &Outgoing,
    message_id: &str,
    date: DateTime<Utc>,
) -> anyhow::Result<Rendered> {
    let total: u64 = outgoing
        .attachments
        .iter()
        .map(|a| a.bytes.len() as u64)
        .sum();
    let mut fitted = outgoing.clone();
    let mut fit = Fit::AsIs;
    if !outgoing.attachments.is_empty() && total > config.zip_over_bytes {
        fitted.attachments = vec![zip_attachments(&outgoing.attachments, date)?];
        fit = Fit::Zipped;
    }
    let raw = build_message(config, &fitted, message_id, date)?;
    if raw.len() as u64 <= config.max_message_bytes || fitted.attachments.is_empty() {
        return Ok(Rendered { raw, fit });
    }
    let (text_note, html_note) = attachments_note(config, outgoing, total, raw.len() as u64);
    fitted.attachments.clear();
    fitted.text = format!("{}\n\n{text_note}", outgoing.text.trim_end());
    fitted.html = match outgoing.html.rfind("</body>") {
        Some(at) => format!(
            "{}{html_note}{}",
            &outgoing.html[..at],
            &outgoing.html[at..]
        ),
        None => format!("{}{html_note}", outgoing.html),
    };
    let raw = build_message(config, &fitted, message_id, date)?;
    Ok(Rendered {
        raw,
        fit: Fit::WithoutAttachments,
    })
}

/// The note that replaces attachments too large to send, as plain text (lines of at most 78
/// characters, the path on its own line) and as an HTML paragraph.
fn attachments_note(
    config: &MailConfig,
    outgoing: &Outgoing,
    total: u64,
    size: u64,
) -> (String, String) {
    let count = outgoing.attachments.len();
    let files = if count == 1 { "file" } else { "files" };
    let megabytes = |bytes: u64| match bytes {
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{} KB", (bytes + 500) / 1_000),
        _ => format!("{:.1} MB", bytes as f64 / 1_000_000.0),
    };
    let why = format!(
        "The attachments ({count} {files}, {}) are not attached: with them the message\n\
         ({}) would exceed mail.max_message_bytes ({}).",
        megabytes(total),
        megabytes(size),
        megabytes(config.max_message_bytes),
    );
    let (where_text, where_html) = match &outgoing.files_dir {
        Some(dir) => {
            let dir = dir.display().to_string();
            (
                format!("They are on the orgwarden server in:\n{dir}"),
                format!(
                    "They are on the orgwarden server in <code>{}</code>.",
                    crate::report::escape_html(&dir)
                ),
            )
        }
        None => (
            "They are not kept on the server; run `orgwarden report --out DIR` there\n\
             to write them."
                .to_owned(),
            "They are not kept on the server; run <code>orgwarden report --out DIR</code> \
             there to write them."
                .to_owned(),
        ),
    };
    let text = format!("{why}\n{where_text}\n");
    let html = format!(
        "<p style=\"margin:16px 0;padding:8px;border:1px solid #ccc\">{} {where_html}</p>",
        crate::report::escape_html(&why.replace('\n', " "))
    );
    (text, html)
}

/// Zips `attachments` (deflate) into one [`ZIP_NAME`], each file dated `date`.
fn zip_attachments(attachments: &[Attachment], date: DateTime<Utc>) -> anyhow::Result<Attachment> {
    use chrono::{Datelike as _, Timelike as _};
    let modified = zip::DateTime::from_date_and_time(
        u16::try_from(date.year()).unwrap_or(1980),
        date.month() as u8,
        date.day() as u8,
        date.hour() as u8,
        date.minute() as u8,
        date.second() as u8,
    )
    .unwrap_or_default();
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(modified);
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for attachment in attachments {
        // A flat archive: no directories, nothing that could climb out of one.
        let name = clean_subject(&attachment.filename).replace(['/', '\\'], "_");
        writer
            .start_file(name.as_str(), options)
            .with_context(|| format!("cannot zip {name:?}"))?;
        writer
            .write_all(&attachment.bytes)
            .with_context(|| format!("cannot zip {name:?}"))?;
    }
    let bytes = writer
        .finish()
        .context("cannot finish report.zip")?
        .into_inner();
    Ok(Attachment {
        filename: ZIP_NAME.to_owned(),
        content_type: "application/zip".to_owned(),
        bytes,
    })
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
        let attempts = record.attempts + 1;
        // Only the recipients still open: one that accepted never gets the message twice.
        let remaining = record.remaining_recipients();
        let result = match envelope_for(&record.sender, &remaining) {
            Ok(envelope) if !remaining.is_empty() => {
                deliver_each(config, &envelope, &message.raw).await
            }
            Ok(_) => Ok(Delivery::default()),
            Err(error) => Err(error),
        };
        let mut delivered_to = record.delivered_to.clone();
        let mut refused = record.refused.clone();
        let next = now + backoff(attempts);
        let (status, error) = match result {
            Ok(delivery) => {
                for refusal in &delivery.refused {
                    tracing::warn!(
                        message_id = %record.message_id,
                        recipient = %refusal.address,
                        answer = %refusal.reason,
                        "mail recipient refused for good; the others still get the message"
                    );
                }
                delivered_to.extend(delivery.accepted.iter().cloned());
                refused.extend(delivery.refused.iter().cloned());
                settle(&delivered_to, &refused, &delivery.deferred)
            }
            Err(error) => {
                let status = if error.is_permanent() {
                    OutboxStatus::Failed
                } else {
                    OutboxStatus::Pending
                };
                (status, Some(error.to_string()))
            }
        };
        store.outbox_record_attempt(
            record.id,
            &OutboxAttempt {
                at: now,
                status,
                next_attempt_at: (status == OutboxStatus::Pending).then_some(next),
                error: error.as_deref(),
                delivered_to: &delivered_to,
                refused: &refused,
            },
        )?;
        match status {
            OutboxStatus::Sent => {
                summary.sent += 1;
                tracing::info!(
                    message_id = %record.message_id,
                    attempt = attempts,
                    recipients = delivered_to.len(),
                    refused = refused.len(),
                    "mail delivered"
                );
            }
            OutboxStatus::Failed => {
                summary.failed += 1;
                tracing::error!(message_id = %record.message_id, attempt = attempts, error = error.as_deref().unwrap_or_default(), "mail refused for good; not retried");
            }
            OutboxStatus::Pending => {
                summary.retrying += 1;
                tracing::warn!(message_id = %record.message_id, attempt = attempts, next_attempt_at = %crate::org::ts(&next), error = error.as_deref().unwrap_or_default(), "mail not delivered; will retry");
            }
        }
        if let Some(error) = error {
            summary
                .errors
                .push(format!("{}: {error}", record.message_id));
        }
    }
    Ok(summary)
}

/// The state of a message after an attempt that reached the recipients: pending while any is
/// deferred, sent when every recipient is settled and at least one accepted, failed when every
/// one was refused. The error names the refused and deferred recipients.
fn settle(
    delivered_to: &[String],
    refused: &[RefusedRecipient],
    deferred: &[RefusedRecipient],
) -> (OutboxStatus, Option<String>) {
    let mut problems = Vec::new();
    if !refused.is_empty() {
        problems.push(format!("refused for good: {}", list_refused(refused)));
    }
    if !deferred.is_empty() {
        problems.push(format!(
            "deferred, tried again later: {}",
            list_refused(deferred)
        ));
    }
    let error = (!problems.is_empty()).then(|| problems.join("; "));
    let status = if !deferred.is_empty() {
        OutboxStatus::Pending
    } else if delivered_to.is_empty() {
        OutboxStatus::Failed
    } else {
        OutboxStatus::Sent
    };
    let error = match (status, error) {
        (OutboxStatus::Failed, Some(error)) => Some(format!(
            "every recipient was refused ({error}); check mail.to"
        )),
        (_, error) => error,
    };
    (status, error)
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
    let Rendered { raw, fit } = render(config, outgoing, message_id, now)?;
    if fit != Fit::AsIs {
        tracing::info!(
            message_id,
            fit = ?fit,
            size = raw.len(),
            max_message_bytes = config.max_message_bytes,
            "mail made to fit the size limit"
        );
    }
    if raw.len() as u64 > config.max_message_bytes {
        tracing::warn!(
            message_id,
            size = raw.len(),
            max_message_bytes = config.max_message_bytes,
            "mail larger than mail.max_message_bytes even without attachments; sent anyway"
        );
    }
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
        files_dir: None,
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
        "refused",
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
            list_refused(&self.refused),
            time(&self.sent_at),
        ]
    }
}

#[cfg(test)]
mod tests;
