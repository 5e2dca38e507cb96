//! The alerts, owner notices and outbox jobs.

use super::*;

/// What the alerts step stored and delivered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertsSummary {
    /// Alerts stored (one per channel); a repeat of an occurrence already alerted is not.
    pub queued: u64,
    pub sent: u64,
    pub retrying: u64,
    pub failed: u64,
}

/// The alerts the store shows now: new findings at or above `min_severity`, tripped guards,
/// actions failed since `since`, a failing snapshot streak and stale data.
pub fn current_alerts(
    config: &Config,
    store: &Store,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<crate::alerts::Alert>> {
    use crate::alerts::{Alert, AlertEvent, OrgRef};
    use crate::store::RunStatus;
    let settings = &config.alerts;
    let latest = store.latest_complete(None)?;
    let org = latest
        .as_ref()
        .map(|r| OrgRef {
            id: r.org_id.clone().unwrap_or_default(),
            name: r.org_name.clone().unwrap_or_default(),
        })
        .unwrap_or_default();
    let guard = crate::policy::REMEDIATION_GUARD.as_str();
    let mut alerts = Vec::new();
    for finding in store.findings(true)? {
        if finding.rule == guard {
            alerts.push(Alert::guard(&finding, &org, now));
        } else if finding.status == crate::policy::FindingStatus::New
            && finding.severity >= settings.min_severity
        {
            alerts.push(Alert::finding(&finding, &org, now));
        }
    }
    for action in store.actions_since(Some(since))? {
        if action.status == crate::policy::ActionStatus::Failed {
            alerts.push(Alert {
                event: AlertEvent::ActionFailed,
                dedup_key: format!("action:{}", action.id),
                title: format!(
                    "remediation failed: {} {}",
                    action.action.as_str(),
                    action.subject
                ),
                detail: action.reason.clone().unwrap_or_default(),
                severity: None,
                organization: org.clone(),
                at: now,
                findings: Vec::new(),
            });
        }
    }
    let runs = store.runs()?;
    let streak: Vec<_> = runs
        .iter()
        .rev()
        .filter(|r| r.status != RunStatus::Running)
        .take_while(|r| r.status != RunStatus::Complete)
        .collect();
    if streak.len() >= settings.failed_runs as usize {
        let first = streak.last().map(|r| r.id).unwrap_or(0);
        let last = streak.first();
        alerts.push(Alert {
            event: AlertEvent::SnapshotFailing,
            dedup_key: format!("snapshot-failing:{first}"),
            title: format!("{} snapshot runs in a row failed", streak.len()),
            detail: last
                .and_then(|r| r.error.clone())
                .unwrap_or_else(|| "the runs did not complete".to_owned()),
            severity: None,
            organization: org.clone(),
            at: now,
            findings: Vec::new(),
        });
    }
    if let Some(run) = &latest {
        let taken = run.finished_at.unwrap_or(run.started_at);
        let max_age = chrono::Duration::from_std(config.remediation.max_snapshot_age)
            .unwrap_or(chrono::Duration::MAX);
        if now.signed_duration_since(taken) > max_age {
            alerts.push(Alert {
                event: AlertEvent::StaleData,
                dedup_key: format!("stale:{}", run.id),
                title: format!("the latest complete snapshot (run {}) is stale", run.id),
                detail: format!(
                    "taken at {}, older than remediation.max_snapshot_age",
                    crate::org::ts(&taken)
                ),
                severity: None,
                organization: org.clone(),
                at: now,
                findings: Vec::new(),
            });
        }
    }
    Ok(alerts)
}

/// Stores the current alerts in every channel's outbox (an occurrence already stored is not
/// stored again) and delivers what is due.
pub async fn alerts_job(
    ctx: &mut JobContext<'_>,
    since: DateTime<Utc>,
) -> anyhow::Result<AlertsSummary> {
    let now = ctx.now();
    let alerts = current_alerts(ctx.config, ctx.store, since, now)?;
    let mut summary = AlertsSummary::default();
    for channel in &ctx.config.alerts.channels {
        for alert in &alerts {
            let payload = serde_json::to_string(alert)?;
            if ctx.store.enqueue_alert(
                &channel.name,
                &alert.dedup_key,
                alert.event.as_str(),
                &payload,
                now,
            )? {
                summary.queued += 1;
            }
        }
    }
    let flushed = flush_alerts(ctx).await?;
    summary.sent = flushed.sent;
    summary.retrying = flushed.retrying;
    summary.failed = flushed.failed;
    Ok(summary)
}

/// Mails the owner of each key that remediation will act on once its grace period ends
/// (`[alerts.owner_notice]`), once per finding occurrence; returns how many were sent.
pub async fn owner_notices_job(
    ctx: &mut JobContext<'_>,
    cleanup: &CleanupSummary,
) -> anyhow::Result<usize> {
    let config = ctx.config;
    let Some(mail) = &config.mail else {
        return Ok(0);
    };
    let now = ctx.now();
    let state = ctx.store.state_at(cleanup.plan.run_id)?;
    let history = ctx.store.member_emails()?;
    let notices = crate::alerts::owner_notices(
        &cleanup.plan,
        &state,
        &cleanup.audit.result.findings,
        &history,
        now,
    );
    let mut sent = 0;
    for notice in &notices {
        if ctx.store.owner_notice_sent(&notice.dedup_key)? {
            continue;
        }
        let Ok(to) = notice.recipient.parse::<lettre::message::Mailbox>() else {
            tracing::warn!(
                subject = notice.subject_id.as_str(),
                "owner notice skipped: the owner's email is not an address"
            );
            continue;
        };
        let mut mail = mail.clone();
        mail.to = vec![to];
        let (subject, text) = crate::alerts::render_notice(
            notice,
            &state.organization.name,
            &config.alerts.owner_notice.contact,
        );
        let outgoing = crate::mail::Outgoing::plain(subject, text);
        let digest = ring::digest::digest(&ring::digest::SHA256, notice.dedup_key.as_bytes());
        let hex: String = digest.as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let id = format!("notice-{hex}");
        crate::mail::enqueue_and_flush(&mail, ctx.store, &outgoing, &id, now).await?;
        if ctx.store.record_owner_notice(notice, &id, now)? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// Delivers every channel's due alerts: HTTP channels by POST, email channels through the mail
/// outbox (an alert handed to it is sent from there).
pub async fn flush_alerts(ctx: &mut JobContext<'_>) -> anyhow::Result<AlertsSummary> {
    use crate::config::ChannelKind;
    let now = ctx.now();
    let config = ctx.config;
    let mut summary = AlertsSummary::default();
    for channel in &config.alerts.channels {
        if channel.kind == ChannelKind::Email {
            let rows = ctx.store.due_alerts(&channel.name, now)?;
            let (ids, alerts) = crate::alerts::deliver::parse_rows(&rows);
            if alerts.is_empty() {
                continue;
            }
            let Some(mail) = &config.mail else {
                continue;
            };
            let mut mail = mail.clone();
            mail.to = channel.to.clone();
            let (subject, text) =
                crate::alerts::render_email(&alerts, config.alerts.max_per_message);
            let outgoing = crate::mail::Outgoing::plain(subject, text);
            let id = format!(
                "alert-{}",
                crate::alerts::deliver::delivery_id(&channel.name, &ids)
            );
            crate::mail::enqueue_and_flush(&mail, ctx.store, &outgoing, &id, now).await?;
            ctx.store.alerts_sent(&ids, now)?;
            summary.sent += ids.len() as u64;
        } else {
            let flushed =
                crate::alerts::deliver::flush_channel(ctx.store, &config.alerts, channel, now)
                    .await?;
            summary.sent += flushed.alerts_sent;
            summary.retrying += flushed.alerts_retrying;
            summary.failed += flushed.alerts_failed;
        }
    }
    Ok(summary)
}

/// Sends a test alert to channel `name` now (`orgwarden alerts test`), through its outbox.
pub async fn alerts_test_job(
    ctx: &mut JobContext<'_>,
    name: &str,
) -> anyhow::Result<AlertsSummary> {
    use crate::alerts::{Alert, AlertEvent, OrgRef};
    let now = ctx.now();
    let channel = ctx
        .config
        .alerts
        .channels
        .iter()
        .find(|c| c.name == name)
        .with_context(|| {
            let names: Vec<&str> = ctx
                .config
                .alerts
                .channels
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            format!(
                "no alert channel named {name:?} (configured: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })?;
    let org = ctx
        .store
        .latest_complete(None)?
        .map(|r| OrgRef {
            id: r.org_id.unwrap_or_default(),
            name: r.org_name.unwrap_or_default(),
        })
        .unwrap_or_default();
    let alert = Alert {
        event: AlertEvent::Test,
        dedup_key: format!("test:{}", crate::org::ts(&now)),
        title: format!("test message for channel {name}"),
        detail: "orgwarden alerts test: this channel works".to_owned(),
        severity: None,
        organization: org,
        at: now,
        findings: Vec::new(),
    };
    ctx.store.enqueue_alert(
        &channel.name,
        &alert.dedup_key,
        alert.event.as_str(),
        &serde_json::to_string(&alert)?,
        now,
    )?;
    let mut summary = flush_alerts(ctx).await?;
    summary.queued = 1;
    Ok(summary)
}

/// Delivers every outbox message whose retry time has come (mail, then alerts).
pub async fn outbox_job(ctx: &mut JobContext<'_>) -> anyhow::Result<crate::mail::OutboxSummary> {
    if !ctx.config.alerts.channels.is_empty() {
        if let Err(error) = flush_alerts(ctx).await {
            tracing::error!("alerts: {error:#}");
        }
    }
    let now = ctx.now();
    match &ctx.config.mail {
        Some(mail) => crate::mail::flush_outbox(mail, ctx.store, now).await,
        None => Ok(crate::mail::OutboxSummary::default()),
    }
}
