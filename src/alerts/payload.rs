//! Alerts and their rendering for each channel type: pure functions of the alerts.
//!
//! The webhook payload is versioned (`"version": 1`); its findings carry exactly the field
//! names of `audit --format json`. Slack gets Block Kit, Teams an Adaptive Card for a workflow
//! webhook, email a short text.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Severity;
use crate::policy::FindingRecord;

/// The version of the webhook payload; raised on any incompatible change.
pub const WEBHOOK_VERSION: u32 = 1;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// A new finding at or above `min_severity`.
    Finding,
    /// A remediation guard stopped enforcement.
    GuardTripped,
    /// A remediation action failed.
    ActionFailed,
    /// `failed_runs` snapshot runs in a row failed.
    SnapshotFailing,
    /// The latest complete snapshot is older than `remediation.max_snapshot_age`.
    StaleData,
    /// `orgwarden alerts test`.
    Test,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Finding => "finding",
            AlertEvent::GuardTripped => "guard_tripped",
            AlertEvent::ActionFailed => "action_failed",
            AlertEvent::SnapshotFailing => "snapshot_failing",
            AlertEvent::StaleData => "stale_data",
            AlertEvent::Test => "test",
        }
    }
}

/// The organization an alert is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRef {
    pub id: String,
    pub name: String,
}

/// One alert, as stored in the outbox (JSON) and rendered on sending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub event: AlertEvent,
    /// What occurrence it is about: the same key is alerted once per channel.
    pub dedup_key: String,
    pub title: String,
    pub detail: String,
    pub severity: Option<Severity>,
    pub organization: OrgRef,
    pub at: DateTime<Utc>,
    /// Findings, serialised as `audit --format json` does.
    pub findings: Vec<Value>,
}

impl Alert {
    /// The alert for one new finding.
    pub fn finding(finding: &FindingRecord, org: &OrgRef, at: DateTime<Utc>) -> Alert {
        Alert {
            event: AlertEvent::Finding,
            dedup_key: format!(
                "finding:{}:{}",
                finding.fingerprint(),
                crate::org::ts(&finding.first_seen)
            ),
            title: format!(
                "{} finding: {} ({})",
                finding.severity.as_str(),
                finding.rule,
                finding.subject
            ),
            detail: finding.evidence.clone(),
            severity: Some(finding.severity),
            organization: org.clone(),
            at,
            findings: vec![serde_json::to_value(finding).unwrap_or(Value::Null)],
        }
    }

    /// The alert for a tripped remediation guard (a guard finding).
    pub fn guard(finding: &FindingRecord, org: &OrgRef, at: DateTime<Utc>) -> Alert {
        let mut alert = Alert::finding(finding, org, at);
        alert.event = AlertEvent::GuardTripped;
        alert.dedup_key = alert.dedup_key.replacen("finding:", "guard:", 1);
        alert.title = format!("remediation guard tripped: {}", finding.subject);
        alert
    }
}

fn severity_of(finding: &Value) -> &str {
    finding["severity"].as_str().unwrap_or("")
}

fn finding_line(finding: &Value) -> String {
    format!(
        "[{}] {} {}: {}",
        severity_of(finding),
        finding["rule"].as_str().unwrap_or(""),
        finding["subject"].as_str().unwrap_or(""),
        finding["evidence"].as_str().unwrap_or("")
    )
}

/// The event of a message: its alerts' event when they share one, else `digest`.
fn message_event(alerts: &[Alert], digest: bool) -> &'static str {
    match alerts.first() {
        Some(first) if !digest && alerts.iter().all(|a| a.event == first.event) => {
            first.event.as_str()
        }
        _ => "digest",
    }
}

/// A one-line summary of a message's alerts.
pub fn summary(alerts: &[Alert]) -> String {
    match alerts {
        [one] => one.title.clone(),
        _ => {
            let findings = alerts
                .iter()
                .filter(|a| a.event == AlertEvent::Finding)
                .count();
            let other = alerts.len() - findings;
            let org = alerts
                .first()
                .map(|a| a.organization.name.as_str())
                .unwrap_or("");
            match (findings, other) {
                (f, 0) => format!("{f} new findings in {org}"),
                (0, o) => format!("{o} alerts for {org}"),
                (f, o) => format!("{f} new findings and {o} other alerts in {org}"),
            }
        }
    }
}

/// The webhook's JSON body (version 1): every alert in full, also in a digest.
pub fn render_webhook(delivery_id: &str, alerts: &[Alert], max_per_message: usize) -> Value {
    let digest = alerts.len() > max_per_message;
    let organization = alerts
        .first()
        .map(|a| a.organization.clone())
        .unwrap_or_default();
    let findings: Vec<&Value> = alerts.iter().flat_map(|a| &a.findings).collect();
    json!({
        "version": WEBHOOK_VERSION,
        "id": delivery_id,
        "event": message_event(alerts, digest),
        "digest": digest,
        "organization": organization,
        "summary": summary(alerts),
        "alerts": alerts.iter().map(|a| json!({
            "event": a.event.as_str(),
            "key": a.dedup_key,
            "title": a.title,
            "detail": a.detail,
            "severity": a.severity,
            "at": a.at,
            "findings": a.findings,
        })).collect::<Vec<_>>(),
        "findings": findings,
    })
}

fn lines(alerts: &[Alert], max: usize) -> (Vec<String>, usize) {
    let all: Vec<String> = alerts
        .iter()
        .flat_map(|a| {
            if a.findings.is_empty() {
                vec![format!("{}: {}", a.title, a.detail)]
            } else if a.event == AlertEvent::Finding {
                a.findings.iter().map(finding_line).collect()
            } else {
                vec![format!("{}: {}", a.title, a.detail)]
            }
        })
        .collect();
    let more = all.len().saturating_sub(max);
    (all.into_iter().take(max).collect(), more)
}

/// A Slack incoming-webhook message (Block Kit): the summary and the first findings.
pub fn render_slack(alerts: &[Alert], max_per_message: usize) -> Value {
    let text = summary(alerts);
    let (shown, more) = lines(alerts, max_per_message);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("orgwarden: {text}"), 150)}}),
    ];
    for line in &shown {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&slack_escape(line), 3000)}}));
    }
    if more > 0 {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("and {more} more (see `orgwarden audit`)")}]}));
    }
    json!({"text": text, "blocks": blocks})
}

/// A Microsoft Teams workflow webhook message: one Adaptive Card.
pub fn render_teams(alerts: &[Alert], max_per_message: usize) -> Value {
    let text = summary(alerts);
    let (shown, more) = lines(alerts, max_per_message);
    let mut body = vec![
        json!({"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true, "text": format!("orgwarden: {text}")}),
    ];
    for line in &shown {
        body.push(json!({"type": "TextBlock", "wrap": true, "text": line}));
    }
    if more > 0 {
        body.push(json!({"type": "TextBlock", "wrap": true, "isSubtle": true, "text": format!("and {more} more (see `orgwarden audit`)")}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            }
        }]
    })
}

/// A short alert mail: (subject, text).
pub fn render_email(alerts: &[Alert], max_per_message: usize) -> (String, String) {
    let subject = format!("[orgwarden] {}", summary(alerts));
    let (shown, more) = lines(alerts, max_per_message);
    let mut text = String::new();
    for line in shown {
        text.push_str(&line);
        text.push('\n');
    }
    if more > 0 {
        text.push_str(&format!("and {more} more (see `orgwarden audit`)\n"));
    }
    (subject, text)
}

/// Slack's mrkdwn control characters, escaped as its docs ask.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max_chars - 1).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(n: usize) -> Alert {
        Alert {
            event: AlertEvent::Finding,
            dedup_key: format!("finding:{n}"),
            title: format!("t{n}"),
            detail: "d".into(),
            severity: Some(Severity::High),
            organization: OrgRef {
                id: "org".into(),
                name: "Acme".into(),
            },
            at: DateTime::<Utc>::MIN_UTC,
            findings: vec![
                json!({"rule": "r", "severity": "high", "subject": format!("s{n}"), "evidence": "<e>"}),
            ],
        }
    }

    #[test]
    fn a_digest_lists_the_first_findings_and_counts_the_rest() {
        let alerts: Vec<Alert> = (0..5).map(alert).collect();
        let slack = render_slack(&alerts, 3);
        let blocks = slack["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 1 + 3 + 1);
        assert!(blocks[1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("&lt;e&gt;"));
        assert!(blocks[4].to_string().contains("and 2 more"));
        let hook = render_webhook("id", &alerts, 3);
        assert_eq!(hook["event"], "digest");
        assert_eq!(hook["alerts"].as_array().unwrap().len(), 5);
        let hook = render_webhook("id", &alerts[..1], 3);
        assert_eq!(hook["event"], "finding");
        assert_eq!(hook["version"], 1);
    }
}
