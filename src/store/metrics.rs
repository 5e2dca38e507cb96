//! The figures `/metrics` and the textfile show, read in one pass over the database.

use std::collections::BTreeMap;

use super::{parse_opt_ts, Context, Result, Store};
use crate::metrics::{JobMetrics, MetricsInput};

impl Store {
    /// The database's part of the metrics: snapshot, audit and report jobs, findings, the audit
    /// trail, the outbox and the last complete snapshot's object counts. `version` and the
    /// process's own counters (API requests, the daemon's job runs) are the caller's.
    pub fn metrics_input(&self, version: &str) -> Result<MetricsInput> {
        let mut input = MetricsInput {
            version: version.to_owned(),
            ..MetricsInput::default()
        };
        let last_complete = self.latest_complete(None)?;
        let last_finished = self
            .query_runs(
                "SELECT * FROM runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1",
                [],
            )?
            .pop();
        let failures: u64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM runs WHERE status IN ('failed', 'abandoned')",
                [],
                |row| row.get(0),
            )
            .ctx(self)?;
        input.jobs.insert(
            "snapshot".to_owned(),
            JobMetrics {
                last_success: last_complete
                    .as_ref()
                    .map(|r| unix(r.finished_at.unwrap_or(r.started_at))),
                duration_seconds: last_finished.as_ref().and_then(|r| {
                    r.finished_at
                        .map(|end| (end - r.started_at).num_milliseconds() as f64 / 1000.0)
                }),
                failures,
            },
        );
        for (job, sql) in [
            ("audit", "SELECT max(audited_at) FROM audits"),
            ("report", "SELECT max(generated_at) FROM reports"),
        ] {
            let last = self
                .conn
                .query_row(sql, [], |row| parse_opt_ts(row.get(0)?))
                .ctx(self)?;
            input.jobs.insert(
                job.to_owned(),
                JobMetrics {
                    last_success: last.map(unix),
                    ..JobMetrics::default()
                },
            );
        }
        input.findings = self.grouped(
            "SELECT rule, severity, status, count(*) FROM findings GROUP BY 1, 2, 3",
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            3,
        )?;
        input.actions = self.grouped(
            "SELECT action, status, count(*) FROM actions GROUP BY 1, 2",
            |row| Ok((row.get(0)?, row.get(1)?)),
            2,
        )?;
        // Every message in the outbox is a report email so far.
        input.outbox = self.grouped(
            "SELECT 'report', status, count(*) FROM outbox GROUP BY 1, 2",
            |row| Ok((row.get(0)?, row.get(1)?)),
            2,
        )?;
        if let Some(counts) = last_complete.and_then(|r| r.counts) {
            for (kind, n) in [
                ("members", counts.members),
                ("invites", counts.invites),
                ("workspaces", counts.workspaces),
                ("workspace_members", counts.workspace_members),
                ("api_keys", counts.api_keys),
            ] {
                input.snapshot_objects.insert(kind.to_owned(), n);
            }
        }
        Ok(input)
    }

    /// Rows of `sql` keyed by `key`, with the count in column `count_at`.
    fn grouped<K: Ord>(
        &self,
        sql: &str,
        key: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<K>,
        count_at: usize,
    ) -> Result<BTreeMap<K, u64>> {
        let mut statement = self.conn.prepare(sql).ctx(self)?;
        let rows = statement
            .query_map([], |row| Ok((key(row)?, row.get::<_, u64>(count_at)?)))
            .ctx(self)?;
        rows.collect::<rusqlite::Result<_>>().ctx(self)
    }
}

fn unix(at: chrono::DateTime<chrono::Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}
