//! Delivery of the alert outbox to the HTTP channels (webhook, Slack, Teams), with retries.
//!
//! A channel's due alerts go out as one POST; a 2xx marks them sent (never sent again), a 429
//! or 5xx or a network error retries them later (after Slack's `retry-after` when given, else
//! with exponential backoff), any other 4xx refuses them for good. Every POST carries
//! `X-Orgwarden-Delivery`, the same on every retry, so a receiver can drop a repeat after a
//! crash between its answer and our bookkeeping. Errors never name the URL: it is a secret.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::{render_slack, render_teams, render_webhook, Alert};
use crate::config::{AlertChannel, AlertsConfig, ChannelKind};
use crate::store::{AlertRow, Store};

/// The header of the webhook signature: `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const SIGNATURE_HEADER: &str = "x-orgwarden-signature";
/// The header of the signed Unix time (seconds).
pub const TIMESTAMP_HEADER: &str = "x-orgwarden-timestamp";
/// The header naming a delivery (stable across its retries).
pub const DELIVERY_HEADER: &str = "x-orgwarden-delivery";

/// The longest wait honoured from a `retry-after`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one channel's flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlushSummary {
    pub messages_sent: u64,
    pub alerts_sent: u64,
    pub alerts_retrying: u64,
    pub alerts_failed: u64,
}

/// What a receiver said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Try again; after the receiver's `retry-after` when it gave one.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Refused for good.
    Refused(String),
}

/// The HMAC-SHA256 signature of `body` at `timestamp`, as the header carries it.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The body of a message of `alerts` for an HTTP channel.
pub fn body(channel: &AlertChannel, delivery_id: &str, alerts: &[Alert], max: usize) -> Vec<u8> {
    let value = match channel.kind {
        ChannelKind::Slack => render_slack(alerts, max),
        ChannelKind::Teams => render_teams(alerts, max),
        ChannelKind::Webhook | ChannelKind::Email => render_webhook(delivery_id, alerts, max),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// POSTs one message to an HTTP channel.
pub async fn post(
    client: &reqwest::Client,
    channel: &AlertChannel,
    delivery_id: &str,
    body: Vec<u8>,
    now: DateTime<Utc>,
) -> Outcome {
    let Some(url) = &channel.url else {
        return Outcome::Refused("the channel has no url".to_owned());
    };
    let mut request = client
        .post(url.expose_secret())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, delivery_id);
    if let (ChannelKind::Webhook, Some(secret)) = (channel.kind, &channel.secret) {
        let timestamp = now.timestamp();
        request = request
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                signature(secret.expose_secret(), timestamp, &body),
            );
    }
    match request.body(body).send().await {
        Err(error) => Outcome::Retry {
            // The URL is a secret: never in an error.
            error: error.without_url().to_string(),
            after: None,
        },
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                return Outcome::Sent;
            }
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())));
            let text: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            let error = format!("HTTP {}: {}", status.as_u16(), text.trim());
            if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
                Outcome::Retry { error, after }
            } else {
                Outcome::Refused(error)
            }
        }
    }
}

/// The wait before the next attempt after `attempts` failed ones: 1 minute, doubling, at most an
/// hour; a receiver's `retry-after` instead when it gave one.
pub fn backoff(attempts: u32, retry_after: Option<Duration>) -> Duration {
    retry_after.unwrap_or_else(|| {
        Duration::from_secs(60u64.saturating_mul(1u64 << attempts.min(6)).min(3600))
    })
}

/// The alerts of stored rows (a row that no longer parses is skipped, never sent).
pub fn parse_rows(rows: &[AlertRow]) -> (Vec<i64>, Vec<Alert>) {
    let mut ids = Vec::new();
    let mut alerts = Vec::new();
    for row in rows {
        match serde_json::from_str::<Alert>(&row.payload) {
            Ok(alert) => {
                ids.push(row.id);
                alerts.push(alert);
            }
            Err(error) => tracing::error!(alert = row.id, "unreadable stored alert: {error}"),
        }
    }
    (ids, alerts)
}

/// A delivery id for a message of rows: the channel and the first and last row ids.
pub fn delivery_id(channel: &str, ids: &[i64]) -> String {
    format!(
        "{channel}-{}-{}",
        ids.first().copied().unwrap_or(0),
        ids.last().copied().unwrap_or(0)
    )
}

/// Sends an HTTP channel's due alerts as one message and records the outcome.
pub async fn flush_channel(
    store: &mut Store,
    config: &AlertsConfig,
    channel: &AlertChannel,
    now: DateTime<Utc>,
) -> anyhow::Result<FlushSummary> {
    let mut summary = FlushSummary::default();
    let rows = store.due_alerts(&channel.name, now)?;
    if rows.is_empty() {
        return Ok(summary);
    }
    let (ids, alerts) = parse_rows(&rows);
    if alerts.is_empty() {
        return Ok(summary);
    }
    let delivery = delivery_id(&channel.name, &ids);
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()?;
    let payload = body(channel, &delivery, &alerts, config.max_per_message);
    let attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(0);
    match post(&client, channel, &delivery, payload, now).await {
        Outcome::Sent => {
            store.alerts_sent(&ids, now)?;
            summary.messages_sent = 1;
            summary.alerts_sent = ids.len() as u64;
        }
        Outcome::Retry { error, after } => {
            let wait = backoff(attempts, after);
            let retry_at = now + chrono::Duration::from_std(wait).unwrap_or_default();
            tracing::warn!(
                channel = channel.name,
                "alert delivery failed, retrying at {retry_at}: {error}"
            );
            store.alerts_attempt_failed(&ids, &error, Some(retry_at))?;
            summary.alerts_retrying = ids.len() as u64;
        }
        Outcome::Refused(error) => {
            tracing::error!(channel = channel.name, "alert delivery refused: {error}");
            store.alerts_attempt_failed(&ids, &error, None)?;
            summary.alerts_failed = ids.len() as u64;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature("Jefe", 0, b"what do ya want for nothing?");
        // Our data is "0." + body, so compare with ring directly on that data.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let tag = ring::hmac::sign(&key, b"0.what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sig, format!("sha256={hex}"));
        assert_ne!(sig, signature("Jefe", 1, b"what do ya want for nothing?"));
    }

    #[test]
    fn backoff_doubles_to_an_hour_and_honours_retry_after() {
        assert_eq!(backoff(0, None), Duration::from_secs(60));
        assert_eq!(backoff(1, None), Duration::from_secs(120));
        assert_eq!(backoff(30, None), Duration::from_secs(3600));
        assert_eq!(
            backoff(3, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
