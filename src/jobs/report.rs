//! The report job: the period, the files, and sending the email through the outbox.

use super::*;

/// What one report wrote and sent.
#[derive(Debug, Clone, Serialize)]
pub struct ReportSummary {
    pub run_id: i64,
    pub subject: String,
    pub out_dir: std::path::PathBuf,
    pub files: Vec<std::path::PathBuf>,
    /// The queued message, when the report was sent.
    pub message_id: Option<String>,
    pub outbox: Option<crate::mail::OutboxSummary>,
    /// The snapshot the period starts after (`None`: the first report, or `--since` a time
    /// before every retained snapshot).
    pub period_start_run: Option<i64>,
    /// When the period starts (`None` for the first report).
    pub period_start: Option<DateTime<Utc>>,
    /// Whether the report was recorded as ending its period (sent, or written by the schedule);
    /// a preview is not, so the next report starts where this one did.
    pub recorded: bool,
}

/// Where a report's period starts (`report --since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Right after snapshot run N: its state is the baseline of the changes.
    Run(i64),
    /// At a time; the baseline is the latest complete snapshot taken by then.
    Time(DateTime<Utc>),
}

impl Since {
    /// `RUN` (a run id), `YYYY-MM-DD` (midnight in `tz`) or an RFC 3339 time.
    pub fn parse(text: &str, tz: chrono_tz::Tz) -> Result<Since, String> {
        let text = text.trim();
        if let Ok(run) = text.parse::<i64>() {
            return Ok(Since::Run(run));
        }
        if let Ok(time) = DateTime::parse_from_rfc3339(text) {
            return Ok(Since::Time(time.with_timezone(&Utc)));
        }
        if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            use chrono::TimeZone;
            let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
            if let Some(time) = tz.from_local_datetime(&midnight).earliest() {
                return Ok(Since::Time(time.with_timezone(&Utc)));
            }
        }
        Err(format!(
            "--since {text:?}: expected a run id, a date (YYYY-MM-DD, in schedule.timezone) or an RFC 3339 time"
        ))
    }
}

/// How a report is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportOptions<'a> {
    /// Directory for the CSVs (default: a new, unique directory under `report.out_dir`).
    pub out: Option<&'a Path>,
    /// Queue the email in the outbox and deliver it; a sent report ends its period.
    pub send: bool,
    /// Start the period here instead of at the previous sent report.
    pub since: Option<Since>,
    /// Record the report as ending its period even though it is not sent (the scheduled report
    /// when `[mail]` has no recipients). Otherwise an unsent report is a preview.
    pub record_unsent: bool,
}

/// Turns the stored rule outcomes (JSON) back into outcomes with the policy's static rule ids.
fn stored_rule_outcomes(rules: &serde_json::Value) -> Vec<crate::policy::RuleOutcome> {
    use crate::policy::{RuleId, RuleOutcome, RuleStatus};
    let Some(list) = rules.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|o| {
            let name = o["rule"].as_str()?;
            let rule = RuleId::parse(name)?;
            let status = match o["status"].as_str()? {
                "evaluated" => RuleStatus::Evaluated,
                "disabled" => RuleStatus::Disabled,
                _ => RuleStatus::NotEvaluated(o["reason"].as_str().unwrap_or("").to_owned()),
            };
            Some(RuleOutcome {
                rule,
                status,
                n_findings: o["n_findings"].as_u64().unwrap_or(0) as usize,
            })
        })
        .collect()
}

/// Makes the report of the period that ends at the latest complete snapshot (auditing it
/// first if needed) and starts at the previous sent report's snapshot (or `since`): writes the
/// CSVs into `out` (default: a new directory under `report.out_dir`) and, with `send`, stores
/// the email in the outbox and tries to deliver it.
///
/// New findings are those first seen in the period, resolved ones those resolved in it, the
/// changes are the diff between the period's first and last snapshots and the actions those
/// planned from its snapshots. A report that is neither sent nor `record_unsent` is a preview:
/// it records nothing, so the next report's period is unchanged.
pub async fn report_job(
    ctx: &mut JobContext<'_>,
    options: &ReportOptions<'_>,
) -> anyhow::Result<ReportSummary> {
    let config = ctx.config;
    let generated_at = ctx.now();
    let store = &mut *ctx.store;
    let run_id = resolve_run(store, None)?;
    let evaluated = evaluate_run(config, store, Some(run_id), generated_at)?;
    if store.last_audited_run()? != Some(run_id) {
        record(store, &evaluated, generated_at)?;
    }
    let state = &evaluated.state;

    let (start_run, period_start) = report_period(store, options.since)?;

    let mut findings = store.findings(true)?;
    findings
        .extend(store.findings_resolved_since(period_start.unwrap_or(DateTime::<Utc>::MIN_UTC))?);
    let rules = store
        .audits(1)?
        .first()
        .map(|a| stored_rule_outcomes(&a.rules))
        .unwrap_or_default();
    let changes = match start_run {
        Some(start) if start != run_id => match store.state_at(start) {
            Ok(before) => crate::org::diff(&before, state),
            // Retention removed that snapshot: no diff rather than a wrong one.
            Err(_) => Vec::new(),
        },
        _ => Vec::new(),
    };
    let actions = store.actions_in_runs(start_run, run_id)?;
    let failures: Vec<crate::report::PeriodFailure> = store
        .failed_runs_after(start_run)?
        .into_iter()
        .filter(|r| period_start.is_none_or(|start| r.started_at > start))
        .map(|r| crate::report::PeriodFailure {
            what: format!("snapshot run {}", r.id),
            at: r.finished_at.unwrap_or(r.started_at),
            error: r
                .error
                .unwrap_or_else(|| format!("the run was {}", r.status.as_str())),
        })
        .collect();
    let plan = plan_of(config, store, &evaluated, generated_at)?;
    let waiting = crate::report::WaitingAction::from_plan(&plan);
    let emails = store.member_emails()?;
    let schedule = &config.schedule;
    let report_ctx = crate::report::ReportContext {
        period_start,
        failures: &failures,
        audit_period: crate::schedule::period(&schedule.audit, schedule.timezone, generated_at),
        timezone: schedule.timezone,
        plan: &waiting,
        mode: config.remediation.mode.as_str(),
        emails: &emails,
        csv_bom: config.report.csv_bom,
    };
    let rendered = crate::report::render_with(
        &crate::report::ReportInput {
            state,
            findings: &findings,
            rules: &rules,
            changes: &changes,
            changes_since: period_start,
            actions: &actions,
            top_n: config.report.top_findings,
            generated_at,
        },
        &report_ctx,
    );

    let (out_dir, files) =
        write_report_files(config, options.out, &rendered, run_id, generated_at)?;

    let (message_id, outbox) = if options.send {
        let (id, summary) =
            send_report(config, store, &rendered, &out_dir, run_id, generated_at).await?;
        (Some(id), Some(summary))
    } else {
        (None, None)
    };
    let kind = if options.send {
        Some(crate::store::ReportKind::Sent)
    } else if options.record_unsent {
        Some(crate::store::ReportKind::Written)
    } else {
        None
    };
    if let Some(kind) = kind {
        store.record_report(
            run_id,
            generated_at,
            message_id.as_deref(),
            Some(&out_dir.display().to_string()),
            kind,
        )?;
    }
    Ok(ReportSummary {
        run_id,
        subject: rendered.subject,
        out_dir,
        files,
        message_id,
        outbox,
        period_start_run: start_run,
        period_start,
        recorded: kind.is_some(),
    })
}

/// The start of a report's period: the snapshot run it starts after and its time. After the
/// previous *sent* report's snapshot, or `--since`; `(None, None)` for the first report.
fn report_period(
    store: &Store,
    since: Option<Since>,
) -> anyhow::Result<(Option<i64>, Option<DateTime<Utc>>)> {
    Ok(match since {
        Some(Since::Run(run)) => {
            let record = store
                .run(run)?
                .filter(|r| r.status == crate::store::RunStatus::Complete)
                .with_context(|| format!("--since {run}: no complete snapshot run {run}"))?;
            (
                Some(run),
                Some(record.finished_at.unwrap_or(record.started_at)),
            )
        }
        Some(Since::Time(at)) => (store.latest_complete_at(at)?.map(|r| r.id), Some(at)),
        None => match store.last_sent_report()? {
            Some(previous) => {
                let at = match store.run(previous.run_id)? {
                    Some(run) => run.finished_at.unwrap_or(run.started_at),
                    // Retention removed the run: its report's time is the next best start.
                    None => previous.generated_at,
                };
                (Some(previous.run_id), Some(at))
            }
            None => (None, None),
        },
    })
}

/// Writes the report's CSV files (each through a temporary file and a rename) into `out` or a
/// fresh folder under `report.out_dir`.
fn write_report_files(
    config: &Config,
    out: Option<&Path>,
    rendered: &crate::report::RenderedReport,
    run_id: i64,
    generated_at: DateTime<Utc>,
) -> anyhow::Result<(std::path::PathBuf, Vec<std::path::PathBuf>)> {
    let out_dir = match out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the report directory {}", dir.display()))?;
            dir.to_owned()
        }
        None => unique_dir(
            &config.report.out_dir,
            &format!("{}-run-{run_id}", generated_at.format("%Y%m%dT%H%M%SZ")),
        )?,
    };
    let mut files = Vec::new();
    for (name, bytes) in &rendered.files {
        let path = out_dir.join(name);
        let tmp = out_dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        files.push(path);
    }

    Ok((out_dir, files))
}

/// Queues the report email in the outbox and tries to deliver it: its Message-ID local part and
/// what the outbox did.
async fn send_report(
    config: &Config,
    store: &mut Store,
    rendered: &crate::report::RenderedReport,
    out_dir: &Path,
    run_id: i64,
    generated_at: DateTime<Utc>,
) -> anyhow::Result<(String, crate::mail::OutboxSummary)> {
    let mail = config
        .mail
        .as_ref()
        .filter(|m| !m.to.is_empty())
        .context("mail.to is empty: nowhere to send the report (set [mail] to and from)")?;
    let outgoing = crate::mail::Outgoing {
        subject: rendered.subject.clone(),
        text: rendered.text.clone(),
        html: rendered.html.clone(),
        attachments: rendered
            .files
            .iter()
            .map(|(name, bytes)| crate::mail::Attachment {
                filename: name.clone(),
                content_type: "text/csv; charset=utf-8".to_owned(),
                bytes: bytes.clone(),
            })
            .collect(),
        files_dir: Some(std::path::absolute(out_dir).unwrap_or_else(|_| out_dir.to_owned())),
    };
    let id = format!(
        "report-{}-run-{}",
        generated_at.format("%Y%m%dT%H%M%S%.6fZ"),
        run_id
    );
    let (_, summary) =
        crate::mail::enqueue_and_flush(mail, store, &outgoing, &id, generated_at).await?;
    Ok((id, summary))
}

/// Creates `parent/name`, or `parent/name-2`, `-3`, ... when it exists: two reports never share
/// a directory.
fn unique_dir(parent: &Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(parent)
        .with_context(|| format!("creating the report directory {}", parent.display()))?;
    for n in 1..=10_000u32 {
        let dir = if n == 1 {
            parent.join(name)
        } else {
            parent.join(format!("{name}-{n}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating the report directory {}", dir.display()))
            }
        }
    }
    anyhow::bail!(
        "{}: 10000 report directories named {name}; clean up report.out_dir",
        parent.display()
    )
}

/// The scheduled report: sent when `[mail]` has recipients, else written; either way it ends
/// its period.
pub async fn scheduled_report(ctx: &mut JobContext<'_>) -> anyhow::Result<ReportSummary> {
    let send = ctx.config.mail.as_ref().is_some_and(|m| !m.to.is_empty());
    report_job(
        ctx,
        &ReportOptions {
            send,
            record_unsent: true,
            ..ReportOptions::default()
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::Since;

    #[test]
    fn since_reads_a_run_a_local_date_or_a_time() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let at = |text: &str| Since::Time(text.parse().unwrap());
        let cases = [
            ("12", Ok(Since::Run(12))),
            (" 7 ", Ok(Since::Run(7))),
            // Midnight in schedule.timezone.
            ("2026-03-02", Ok(at("2026-03-01T23:00:00Z"))),
            ("2026-07-02", Ok(at("2026-07-01T22:00:00Z"))),
            ("2026-03-02T08:30:00+01:00", Ok(at("2026-03-02T07:30:00Z"))),
        ];
        for (text, want) in cases {
            assert_eq!(Since::parse(text, berlin), want, "{text}");
        }
        for bad in ["last week", "2026-13-01", ""] {
            let error = Since::parse(bad, berlin).unwrap_err();
            assert!(error.contains("expected a run id, a date"), "{error}");
        }
    }
}
