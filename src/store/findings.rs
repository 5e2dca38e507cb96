//! Findings and their lifecycle, audits, reports, and the former members the policy needs.

use super::Context as _;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;

use super::{parse_opt_ts, parse_ts, ts, Result, Store};
use crate::config::Severity;
use crate::policy::{Action, Evaluation, FormerMember, RuleStatus, SubjectKind};
use crate::policy::{FindingRecord, FindingStatus};

/// What one audit did to the findings table.
#[derive(Debug, Clone, Serialize)]
pub struct AuditResult {
    /// The findings this audit saw (new, open, exempted), then those it resolved.
    pub findings: Vec<FindingRecord>,
    pub n_new: usize,
    pub n_resolved: usize,
    /// False when the lifecycle was left untouched (an older snapshot than the last audited).
    pub stored: bool,
}

/// One row of `audits`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub run_id: i64,
    pub audited_at: DateTime<Utc>,
    /// The rule outcomes as JSON (`[{"rule", "status", "reason"?, "n_findings"}]`).
    pub rules: serde_json::Value,
    pub n_findings: u64,
    pub n_new: u64,
    pub n_resolved: u64,
}

/// One row of `reports`.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRecord {
    pub id: i64,
    pub run_id: i64,
    pub generated_at: DateTime<Utc>,
    pub message_id: Option<String>,
    pub out_dir: Option<String>,
    pub kind: ReportKind,
}

/// What became of a report. A sent or written report ends a period and starts the next one; a
/// preview is never recorded (rows from before schema 5 without a Message-ID read as previews).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// Queued in the outbox for the recipients.
    Sent,
    /// Written to disk by the schedule because `[mail]` has no recipients.
    Written,
    Preview,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Sent => "sent",
            ReportKind::Written => "written",
            ReportKind::Preview => "preview",
        }
    }

    fn parse(text: &str) -> ReportKind {
        match text {
            "sent" => ReportKind::Sent,
            "written" => ReportKind::Written,
            _ => ReportKind::Preview,
        }
    }
}

/// The columns `finding_from_row` reads, in its order.
const FINDING_COLUMNS: &str =
    "rule, severity, subject_kind, subject_id, subject, evidence, action, \
    status, first_seen, last_seen, resolved_at, controls";

pub(super) fn from_text<T: serde::de::DeserializeOwned>(text: String) -> rusqlite::Result<T> {
    serde_json::from_value(serde_json::Value::String(text)).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn finding_from_row(row: &Row<'_>) -> rusqlite::Result<FindingRecord> {
    let severity: String = row.get(1)?;
    let status: String = row.get(7)?;
    let controls: String = row.get(11)?;
    Ok(FindingRecord {
        rule: row.get(0)?,
        severity: Severity::parse(&severity).unwrap_or(Severity::Medium),
        subject_kind: from_text::<SubjectKind>(row.get(2)?)?,
        subject_id: row.get(3)?,
        subject: row.get(4)?,
        evidence: row.get(5)?,
        action: from_text::<Action>(row.get(6)?)?,
        status: FindingStatus::parse(&status).unwrap_or(FindingStatus::Open),
        first_seen: parse_ts(&row.get::<_, String>(8)?)?,
        last_seen: parse_ts(&row.get::<_, String>(9)?)?,
        resolved_at: parse_opt_ts(row.get(10)?)?,
        controls: serde_json::from_str(&controls).unwrap_or_default(),
    })
}

/// Orders findings as people read them: severity (highest first), rule, subject.
/// A finding transition's fields, named as in `audit --format json`: serialised straight to
/// text (an audit of a large organization writes tens of thousands), in the order of the keys of
/// a `serde_json::json!` object, so the stored text is the same as before.
#[derive(serde::Serialize)]
struct FindingPayload<'a> {
    evidence: &'a str,
    fingerprint: &'a str,
    rule: &'a str,
    run_id: i64,
    severity: &'a str,
    subject: &'a str,
    subject_id: &'a str,
    subject_kind: &'a str,
}

pub(crate) fn sort_findings(findings: &mut [FindingRecord]) {
    crate::order::sort_large_by(findings, |a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.subject.cmp(&b.subject))
            .then_with(|| a.subject_id.cmp(&b.subject_id))
    });
}

/// A tracked finding's row as an audit needs it to carry the lifecycle on.
struct Tracked {
    rule: String,
    status: String,
    first_seen: String,
    first_run: i64,
    last_run: i64,
    consecutive: i64,
}

/// One finding's row as an audit writes it.
struct Upsert<'a> {
    fingerprint: &'a str,
    finding: &'a crate::policy::Finding,
    /// The finding's evidence, with the exemption's reason when one matched.
    evidence: std::borrow::Cow<'a, str>,
    status: FindingStatus,
    first_seen: &'a str,
    first_run: i64,
    consecutive: i64,
    /// Whether the finding was tracked (not resolved) before this audit.
    tracked: bool,
    /// The event this audit records for it, if its status changed.
    transition: Option<&'static str>,
}

impl Upsert<'_> {
    /// Serialises the event of this row's transition `kind` (`finding.new` is `guard.tripped`
    /// for a remediation guard's finding: `log_audit` false).
    fn push_event(
        &self,
        kind: &'static str,
        log_audit: bool,
        run_id: i64,
        out: &mut super::events::SerializedEvents,
    ) -> rusqlite::Result<()> {
        let finding = self.finding;
        let pushed = if !log_audit && kind == "finding.new" {
            out.push(
                "guard.tripped",
                serde_json::json!({
                    "guard": finding.subject,
                    "reason": self.evidence,
                    "rule": finding.rule.as_str(),
                    "severity": finding.severity.as_str(),
                    "fingerprint": self.fingerprint,
                    "run_id": run_id,
                }),
            )
        } else {
            out.push(
                kind,
                FindingPayload {
                    rule: finding.rule.as_str(),
                    severity: finding.severity.as_str(),
                    subject_kind: finding.subject_kind.as_str(),
                    subject_id: &finding.subject_id,
                    subject: &finding.subject,
                    fingerprint: self.fingerprint,
                    evidence: &self.evidence,
                    run_id,
                },
            )
        };
        pushed.map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
    }

    /// The finding as this audit leaves it (snapshot time `taken_at`).
    fn record(&self, taken_at: DateTime<Utc>) -> rusqlite::Result<FindingRecord> {
        let finding = self.finding;
        // A new finding was first seen now; a tracked one's time is parsed from its row.
        let first_seen = match self.tracked {
            false => taken_at,
            true => parse_ts(self.first_seen)?,
        };
        Ok(FindingRecord {
            rule: finding.rule.to_string(),
            severity: finding.severity,
            subject_kind: finding.subject_kind,
            subject_id: finding.subject_id.clone(),
            subject: finding.subject.clone(),
            evidence: self.evidence.clone().into_owned(),
            action: finding.action,
            status: self.status,
            first_seen,
            last_seen: taken_at,
            resolved_at: None,
            controls: finding.controls.iter().map(|c| (*c).to_owned()).collect(),
        })
    }
}

/// Upserts `rows` (in key order), [`UPSERTS_PER_STATEMENT`] to a statement: one statement per
/// row costs more than its row. `when` and `run_id` are the audit's snapshot.
fn write_upserts(
    tx: &rusqlite::Transaction<'_>,
    rows: &[&Upsert<'_>],
    when: &str,
    run_id: i64,
    path: &str,
) -> Result<()> {
    // The controls are one static list per rule: each list serialised once.
    let mut controls_json: HashMap<&[&str], String> = HashMap::new();
    for row in rows {
        controls_json
            .entry(row.finding.controls)
            .or_insert_with(|| {
                serde_json::to_string(row.finding.controls).unwrap_or_else(|_| "[]".to_owned())
            });
    }
    let mut full = None;
    for chunk in rows.chunks(UPSERTS_PER_STATEMENT) {
        let mut tail;
        let put = if chunk.len() == UPSERTS_PER_STATEMENT {
            match &mut full {
                Some(put) => put,
                full => full.insert(tx.prepare(&upsert_sql(chunk.len())).ctx(path)?),
            }
        } else {
            tail = tx.prepare(&upsert_sql(chunk.len())).ctx(path)?;
            &mut tail
        };
        put.raw_bind_parameter(1, when).ctx(path)?;
        put.raw_bind_parameter(2, run_id).ctx(path)?;
        for (i, row) in chunk.iter().enumerate() {
            let finding = row.finding;
            let controls = controls_json
                .get(finding.controls)
                .map_or("[]", String::as_str);
            let values: [&dyn rusqlite::ToSql; UPSERT_ROW_PARAMS] = [
                &row.fingerprint,
                &finding.rule.as_str(),
                &finding.severity.as_str(),
                &finding.subject_kind.as_str(),
                &finding.subject_id,
                &finding.subject,
                &row.evidence,
                &finding.action.as_str(),
                &controls,
                &row.status.as_str(),
                &finding.exemption,
                &finding.workspace_id,
                &finding.user_id,
                &row.first_seen,
                &row.first_run,
                &row.consecutive,
            ];
            let base = 2 + i * UPSERT_ROW_PARAMS;
            for (j, value) in values.iter().enumerate() {
                put.raw_bind_parameter(base + j + 1, value).ctx(path)?;
            }
        }
        put.raw_execute().ctx(path)?;
    }
    Ok(())
}

/// How many findings one upsert statement writes.
const UPSERTS_PER_STATEMENT: usize = 32;
/// The parameters of one row of an upsert statement (after `?1`, the time, and `?2`, the run).
const UPSERT_ROW_PARAMS: usize = 16;

/// The upsert of `n` findings: `?1` is `last_seen` and `?2` `last_run` for all of them, then
/// [`UPSERT_ROW_PARAMS`] a row. A finding seen again keeps its row and takes the new values.
fn upsert_sql(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO findings (fingerprint, rule, severity, subject_kind, subject_id, subject, \
           evidence, action, controls, status, exemption, workspace_id, user_id, first_seen, \
           last_seen, resolved_at, first_run, last_run, consecutive) VALUES ",
    );
    for i in 0..n {
        let p = |j: usize| 2 + i * UPSERT_ROW_PARAMS + j;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?1, NULL, ?{}, ?2, ?{})",
            p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10), p(11), p(12), p(13),
            p(14), p(15), p(16)
        ));
    }
    sql.push_str(
        " ON CONFLICT (fingerprint) DO UPDATE SET severity = excluded.severity, \
           subject = excluded.subject, evidence = excluded.evidence, \
           action = excluded.action, controls = excluded.controls, \
           status = excluded.status, exemption = excluded.exemption, \
           workspace_id = excluded.workspace_id, user_id = excluded.user_id, \
           first_seen = excluded.first_seen, last_seen = excluded.last_seen, \
           resolved_at = NULL, first_run = excluded.first_run, \
           last_run = excluded.last_run, consecutive = excluded.consecutive",
    );
    sql
}

impl Store {
    /// People an earlier snapshot listed as members and the snapshot of `run_id` does not, with
    /// when a snapshot last saw them (as far back as retention keeps history).
    pub fn former_members(&self, run_id: i64) -> Result<Vec<FormerMember>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.id, m.email, \
                   (SELECT max(coalesce(r.finished_at, r.started_at)) FROM runs r \
                     WHERE r.status = 'complete' AND r.id >= m.valid_from AND r.id < m.valid_to) \
                 FROM members m \
                 WHERE m.valid_to IS NOT NULL AND m.valid_to <= ?1 \
                   AND m.valid_to = (SELECT max(valid_to) FROM members o WHERE o.id = m.id) \
                   AND NOT EXISTS (SELECT 1 FROM members c WHERE c.id = m.id \
                       AND c.valid_from <= ?1 AND (c.valid_to IS NULL OR c.valid_to > ?1)) \
                 ORDER BY m.id",
            )
            .ctx(self)?;
        let rows = stmt
            .query_map([run_id], |row| {
                let last_seen: Option<String> = row.get(2)?;
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    last_seen,
                ))
            })
            .ctx(self)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, email, last_seen) = row.ctx(self)?;
            // A version whose runs were all pruned or never completed has no sighting to report.
            let Some(last_seen) = last_seen else { continue };
            let last_seen = parse_ts(&last_seen).ctx(self)?;
            out.push(FormerMember {
                id,
                email,
                last_seen,
            });
        }
        Ok(out)
    }

    /// The run id of the newest audit, if any.
    pub fn last_audited_run(&self) -> Result<Option<i64>> {
        self.conn
            .query_row("SELECT max(run_id) FROM audits", [], |row| row.get(0))
            .ctx(self)
    }

    /// Applies one audit of the snapshot `run_id` (taken at `taken_at`) to the findings'
    /// lifecycle, in one transaction:
    /// - a finding never seen (or seen, resolved, and back) is `new`;
    /// - one seen before is `open` (or `exempted` while an exemption covers it);
    /// - a tracked finding of a rule that was evaluated (or is now disabled) and that this
    ///   evaluation no longer shows is `resolved`; the findings of a rule that could not be
    ///   evaluated this time keep their status.
    ///
    /// Auditing a snapshot older than the last audited one computes the statuses but stores
    /// nothing (`stored` is false): history must not move backwards.
    pub fn record_audit(
        &mut self,
        run_id: i64,
        taken_at: DateTime<Utc>,
        evaluation: &Evaluation,
        audited_at: DateTime<Utc>,
    ) -> Result<AuditResult> {
        self.record_findings(run_id, taken_at, evaluation, audited_at, true)
    }

    /// Records the findings raised by remediation's guards for snapshot `run_id`, with the same
    /// lifecycle as the policy's: a guard that no longer trips resolves its finding.
    pub fn record_guard_findings(
        &mut self,
        run_id: i64,
        taken_at: DateTime<Utc>,
        findings: &[crate::policy::Finding],
        at: DateTime<Utc>,
    ) -> Result<AuditResult> {
        let evaluation = Evaluation {
            findings: findings.to_vec(),
            rules: vec![crate::policy::RuleOutcome {
                rule: crate::policy::REMEDIATION_GUARD,
                status: RuleStatus::Evaluated,
                n_findings: findings.len(),
            }],
        };
        self.record_findings(run_id, taken_at, &evaluation, at, false)
    }

    fn record_findings(
        &mut self,
        run_id: i64,
        taken_at: DateTime<Utc>,
        evaluation: &Evaluation,
        audited_at: DateTime<Utc>,
        log_audit: bool,
    ) -> Result<AuditResult> {
        self.require_writer()?;
        let store = self.last_audited_run()?.is_none_or(|last| run_id >= last);
        let path = self.path_text();
        // The findings of a large organization fill tens of megabytes of B-tree, upserted in
        // fingerprint order rather than storage order: with SQLite's default 2 MB cache every
        // upsert would reread and spill pages. The cache only grows as far as it is used.
        self.conn
            .execute_batch("PRAGMA main.cache_size = -32768")
            .ctx(&path)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&path)?;
        let when = ts(&taken_at);

        // The tracked (not resolved) findings, read in one pass rather than looked up one by one.
        let mut tracked: foldhash::HashMap<String, Tracked> = foldhash::HashMap::default();
        {
            let mut stmt = tx
                .prepare(
                    "SELECT fingerprint, status, first_seen, first_run, last_run, consecutive, \
                       rule FROM findings WHERE status != 'resolved'",
                )
                .ctx(&path)?;
            let mut rows = stmt.query([]).ctx(&path)?;
            while let Some(row) = rows.next().ctx(&path)? {
                let tracked_row = Tracked {
                    rule: row.get(6).ctx(&path)?,
                    status: row.get(1).ctx(&path)?,
                    first_seen: row.get(2).ctx(&path)?,
                    first_run: row.get(3).ctx(&path)?,
                    last_run: row.get(4).ctx(&path)?,
                    consecutive: row.get(5).ctx(&path)?,
                };
                tracked.insert(row.get(0).ctx(&path)?, tracked_row);
            }
        }

        // Each finding's identity, made once; `seen` and the rows borrow it.
        let fingerprints: Vec<String> = evaluation
            .findings
            .iter()
            .map(crate::policy::Finding::fingerprint)
            .collect();
        let mut seen: foldhash::HashSet<&str> =
            foldhash::HashSet::with_capacity_and_hasher(fingerprints.len(), Default::default());
        // What to write, in evaluation order: the lifecycle of each finding, worked out here.
        let mut rows: Vec<Upsert<'_>> = Vec::with_capacity(evaluation.findings.len());
        let mut n_new = 0;
        for (finding, fingerprint) in evaluation.findings.iter().zip(&fingerprints) {
            let fingerprint = fingerprint.as_str();
            if !seen.insert(fingerprint) {
                continue;
            }
            let live = tracked.get(fingerprint);
            let (first_seen, first_run, consecutive, was_new) = match live {
                // Re-auditing the same snapshot changes nothing about its age.
                Some(row) if row.last_run == run_id => (
                    row.first_seen.as_str(),
                    row.first_run,
                    row.consecutive,
                    row.status == "new",
                ),
                Some(row) => (
                    row.first_seen.as_str(),
                    row.first_run,
                    row.consecutive + 1,
                    false,
                ),
                None => (when.as_str(), run_id, 1, true),
            };
            let status = if finding.exemption.is_some() {
                FindingStatus::Exempted
            } else if was_new {
                FindingStatus::New
            } else {
                FindingStatus::Open
            };
            if status == FindingStatus::New {
                n_new += 1;
            }
            let evidence = match &finding.exemption {
                Some(reason) => format!("{} (exempted: {reason})", finding.evidence).into(),
                None => finding.evidence.as_str().into(),
            };
            let transition = match (status, live) {
                (FindingStatus::New, None) => Some("finding.new"),
                (FindingStatus::Exempted, None) => Some("finding.exempted"),
                (FindingStatus::Exempted, Some(row)) if row.status != "exempted" => {
                    Some("finding.exempted")
                }
                _ => None,
            };
            rows.push(Upsert {
                fingerprint,
                finding,
                evidence,
                status,
                first_seen,
                first_run,
                consecutive,
                tracked: live.is_some(),
                transition,
            });
        }

        // Two things that need no database are made on a second thread while this one writes
        // the rows: the transitions' events (serialised, appended after the rows, in evaluation
        // order) and the findings this audit returns. For a large organization's first audit
        // that is tens of thousands of payloads and records, a good part of the recording.
        let (serialized, findings) = std::thread::scope(|scope| -> Result<_> {
            let side = scope.spawn(|| -> rusqlite::Result<_> {
                let mut serialized = super::events::SerializedEvents::default();
                for row in rows.iter() {
                    if let Some(kind) = row.transition {
                        row.push_event(kind, log_audit, run_id, &mut serialized)?;
                    }
                }
                let findings: Vec<FindingRecord> = rows
                    .iter()
                    .map(|row| row.record(taken_at))
                    .collect::<rusqlite::Result<_>>()?;
                Ok((serialized, findings))
            });
            // In key order, each upsert lands beside the last one in the B-tree instead of
            // anywhere; the rows themselves stay in evaluation order for the other thread.
            let mut sorted: Vec<&Upsert<'_>> = rows.iter().collect();
            sorted.sort_unstable_by(|a, b| a.fingerprint.cmp(b.fingerprint));
            let written = write_upserts(&tx, &sorted, &when, run_id, &path);
            let made = side
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            written?;
            made.ctx(&path)
        })?;
        let mut findings = findings;
        let mut events = super::events::EventBatch::new(&tx, &audited_at);
        events.write_serialized(&serialized).ctx(&path)?;
        drop(serialized);

        // Resolve what this evaluation no longer shows, for the rules that ran (or were turned
        // off): the tracked findings it did not see, in the order of the status index (status,
        // rule, fingerprint) as a scan would list them. Only those are read whole below.
        let settled: Vec<&str> = evaluation
            .rules
            .iter()
            .filter(|o| !matches!(o.status, RuleStatus::NotEvaluated(_)))
            .map(|o| o.rule.as_str())
            .collect();
        let mut gone: Vec<(&str, &str, &str)> = tracked
            .iter()
            .filter(|(fingerprint, row)| {
                !seen.contains(fingerprint.as_str()) && settled.contains(&row.rule.as_str())
            })
            .map(|(fingerprint, row)| {
                (row.status.as_str(), row.rule.as_str(), fingerprint.as_str())
            })
            .collect();
        gone.sort_unstable();

        drop(rows);

        let mut resolved = Vec::with_capacity(gone.len());
        if !gone.is_empty() {
            let mut whole = tx
                .prepare(&format!(
                    "SELECT {FINDING_COLUMNS} FROM findings WHERE fingerprint = ?1"
                ))
                .ctx(&path)?;
            for (_, _, fingerprint) in gone {
                let mut record = whole
                    .query_row([fingerprint], finding_from_row)
                    .ctx(&path)?;
                record.status = FindingStatus::Resolved;
                record.resolved_at = Some(taken_at);
                resolved.push((fingerprint, record));
            }
        }
        if !resolved.is_empty() {
            let mut resolve = tx
                .prepare(
                    "UPDATE findings SET status = 'resolved', resolved_at = ?2, consecutive = 0 \
                     WHERE fingerprint = ?1",
                )
                .ctx(&path)?;
            for (fingerprint, record) in &resolved {
                resolve.execute(params![fingerprint, when]).ctx(&path)?;
                let payload = FindingPayload {
                    rule: &record.rule,
                    severity: record.severity.as_str(),
                    subject_kind: record.subject_kind.as_str(),
                    subject_id: &record.subject_id,
                    subject: &record.subject,
                    fingerprint,
                    evidence: &record.evidence,
                    run_id,
                };
                events.write("finding.resolved", payload).ctx(&path)?;
            }
        }
        let n_resolved = resolved.len();
        let mut resolved: Vec<FindingRecord> = resolved.into_iter().map(|(_, r)| r).collect();
        sort_findings(&mut resolved);
        findings.extend(resolved);

        if log_audit {
            tx.execute(
                "INSERT INTO audits (run_id, audited_at, rules, n_findings, n_new, n_resolved) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    run_id,
                    ts(&audited_at),
                    serde_json::to_string(&evaluation.rules).unwrap_or_else(|_| "[]".to_owned()),
                    seen.len() as i64,
                    n_new as i64,
                    n_resolved as i64
                ],
            )
            .ctx(&path)?;
            let payload = serde_json::json!({
                "job": "audit",
                "run_id": run_id,
                "findings": seen.len(),
                "new": n_new,
                "resolved": n_resolved,
            });
            events.write("run.finished", payload).ctx(&path)?;
        }
        events.finish().ctx(&path)?;
        if store {
            // Tens of megabytes at 5x: their copy into the database file is not the job's wait.
            let committed = Store::commit_without_checkpoint(tx, &path);
            self.checkpoint_apart(committed, &path)?;
        }
        // Dropping an uncommitted transaction rolls it back.
        Ok(AuditResult {
            findings,
            n_new,
            n_resolved,
            stored: store,
        })
    }

    /// Every tracked finding, in reading order; `active_only` keeps new, open and exempted.
    pub fn findings(&self, active_only: bool) -> Result<Vec<FindingRecord>> {
        if active_only {
            self.select_findings("WHERE status != 'resolved'", [])
        } else {
            self.select_findings("", [])
        }
    }

    /// The new, open and exempted findings of one rule.
    pub fn active_findings_of(&self, rule: &str) -> Result<Vec<FindingRecord>> {
        // The statuses spelled out (the column's CHECK allows these and `resolved`), so the
        // `(status, rule)` index finds the rule's rows instead of a scan of every finding.
        self.select_findings(
            "WHERE rule = ?1 AND status IN ('new', 'open', 'exempted')",
            [rule],
        )
    }

    /// Findings resolved after `since` (exclusive), for "resolved since the last report".
    pub fn findings_resolved_since(&self, since: DateTime<Utc>) -> Result<Vec<FindingRecord>> {
        self.select_findings(
            "WHERE status = 'resolved' AND resolved_at > ?1",
            [ts(&since)],
        )
    }

    fn select_findings<P: rusqlite::Params>(
        &self,
        filter: &str,
        params: P,
    ) -> Result<Vec<FindingRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {FINDING_COLUMNS} FROM findings {filter}"))
            .ctx(self)?;
        let rows = stmt.query_map(params, finding_from_row).ctx(self)?;
        let mut out = rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self)?;
        sort_findings(&mut out);
        Ok(out)
    }

    /// How many audited snapshots in a row showed each live finding, and when its current
    /// occurrence was first seen, by fingerprint.
    pub fn finding_streaks(&self) -> Result<HashMap<String, crate::remediate::Seen>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT fingerprint, consecutive, first_seen FROM findings WHERE status != 'resolved'",
            )
            .ctx(self)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    crate::remediate::Seen {
                        consecutive: row.get::<_, u32>(1)?,
                        first_seen: parse_ts(&row.get::<_, String>(2)?)?,
                    },
                ))
            })
            .ctx(self)?;
        rows.collect::<rusqlite::Result<HashMap<_, _>>>().ctx(self)
    }

    /// The newest audits, newest first.
    pub fn audits(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, run_id, audited_at, rules, n_findings, n_new, n_resolved FROM audits \
                 ORDER BY id DESC LIMIT ?1",
            )
            .ctx(self)?;
        let rows = stmt
            .query_map([limit], |row| {
                Ok(AuditRecord {
                    id: row.get(0)?,
                    run_id: row.get(1)?,
                    audited_at: parse_ts(&row.get::<_, String>(2)?)?,
                    rules: serde_json::from_str(&row.get::<_, String>(3)?)
                        .unwrap_or(serde_json::Value::Null),
                    n_findings: row.get(4)?,
                    n_new: row.get(5)?,
                    n_resolved: row.get(6)?,
                })
            })
            .ctx(self)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self)
    }

    /// Records a report made from snapshot `run_id` that ends a period (a sent or written
    /// one; previews are not recorded).
    pub fn record_report(
        &self,
        run_id: i64,
        generated_at: DateTime<Utc>,
        message_id: Option<&str>,
        out_dir: Option<&str>,
        kind: ReportKind,
    ) -> Result<i64> {
        self.require_writer()?;
        self.conn
            .execute(
                "INSERT INTO reports (run_id, generated_at, message_id, out_dir, kind) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    run_id,
                    ts(&generated_at),
                    message_id,
                    out_dir,
                    kind.as_str()
                ],
            )
            .ctx(self)?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The newest report that ended a period (sent or written), if any: the next report's
    /// period starts at its snapshot.
    pub fn last_sent_report(&self) -> Result<Option<ReportRecord>> {
        self.conn
            .query_row(
                "SELECT id, run_id, generated_at, message_id, out_dir, kind FROM reports \
                 WHERE kind != 'preview' ORDER BY id DESC LIMIT 1",
                [],
                |row| {
                    Ok(ReportRecord {
                        id: row.get(0)?,
                        run_id: row.get(1)?,
                        generated_at: parse_ts(&row.get::<_, String>(2)?)?,
                        message_id: row.get(3)?,
                        out_dir: row.get(4)?,
                        kind: ReportKind::parse(&row.get::<_, String>(5)?),
                    })
                },
            )
            .optional()
            .ctx(self)
    }

    /// The latest email of every member id the retained history knows (current and former
    /// members), for names beside ids and the owners of orphaned keys.
    pub fn member_emails(&self) -> Result<HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, email FROM members ORDER BY valid_from")
            .ctx(self)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .ctx(self)?;
        // Later versions overwrite earlier ones.
        rows.collect::<rusqlite::Result<HashMap<_, _>>>().ctx(self)
    }
}

#[cfg(test)]
mod payload_tests {
    use super::FindingPayload;

    #[test]
    fn a_finding_payload_is_stored_as_the_json_object_it_replaced() {
        let payload = FindingPayload {
            rule: "stale_invites",
            severity: "low",
            subject_kind: "invite",
            subject_id: "invite_1",
            subject: "Ann \"A\" <ann@example.com>\n",
            fingerprint: "f1",
            evidence: "pending for 9 days",
            run_id: 7,
        };
        let before = serde_json::json!({
            "rule": "stale_invites",
            "severity": "low",
            "subject_kind": "invite",
            "subject_id": "invite_1",
            "subject": "Ann \"A\" <ann@example.com>\n",
            "fingerprint": "f1",
            "evidence": "pending for 9 days",
            "run_id": 7,
        });
        assert_eq!(serde_json::to_string(&payload).unwrap(), before.to_string());
    }
}
