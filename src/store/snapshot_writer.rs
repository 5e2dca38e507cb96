//! Writes one snapshot inside one transaction, page by page, on its own connection.
//!
//! Each page is compared row by row as it arrives with the stored current versions, by key in
//! SQL (no copy of the stored state is held in memory): an unchanged row writes nothing to the
//! history, a changed one closes its old version and inserts a new one, a new one is inserted.
//! The keys seen go to a temporary table; `finish` closes the versions this run never saw
//! (vanished objects) with one statement per table and marks the run complete, in the same
//! transaction, so little work is left once the last page arrives. Dropping the writer without `finish` rolls everything back, so a
//! failed snapshot leaves no partial data anywhere.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rusqlite::{params, params_from_iter, Connection, ToSql};

use super::{ts, Counts, Result, StoreError};
use crate::org::{ApiKey, Invite, Organization, User, Workspace, WorkspaceMember};

/// A versioned table: its key columns and every other compared column.
struct Table {
    name: &'static str,
    key: &'static [&'static str],
    columns: &'static [&'static str],
}

const MEMBERS: Table = Table {
    name: "members",
    key: &["id"],
    columns: &["email", "name", "role", "added_at"],
};
const INVITES: Table = Table {
    name: "invites",
    key: &["id"],
    columns: &[
        "email",
        "role",
        "status",
        "invited_at",
        "expires_at",
        "accepted_at",
    ],
};
const WORKSPACES: Table = Table {
    name: "workspaces",
    key: &["id"],
    columns: &["name", "display_color", "created_at", "archived_at"],
};
const WORKSPACE_MEMBERS: Table = Table {
    name: "workspace_members",
    key: &["workspace_id", "user_id"],
    columns: &["workspace_role"],
};
const API_KEYS: Table = Table {
    name: "api_keys",
    key: &["id"],
    columns: &[
        "name",
        "workspace_id",
        "created_at",
        "created_by_id",
        "created_by_type",
        "partial_key_hint",
        "status",
        "expires_at",
        "principal_type",
        "principal_user_id",
        "principal_sa_id",
        "scope_type",
        "scope_workspace_id",
    ],
};
const TABLES: [&Table; 5] = [
    &MEMBERS,
    &INVITES,
    &WORKSPACES,
    &WORKSPACE_MEMBERS,
    &API_KEYS,
];

impl Table {
    fn all_columns(&self) -> Vec<&'static str> {
        self.key.iter().chain(self.columns).copied().collect()
    }

    /// `k1 = ?{first} AND k2 = ?{first + 1}`, qualified by `table` when given.
    fn key_match(&self, first: usize, table: Option<&str>) -> String {
        let prefix = table.map(|t| format!("{t}.")).unwrap_or_default();
        let parts: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(idx, k)| format!("{prefix}{k} = ?{}", idx + first))
            .collect();
        parts.join(" AND ")
    }

    /// The current version of one object (served by the `*_current` partial index).
    fn select_current_one(&self) -> String {
        format!(
            "SELECT {} FROM main.{} WHERE {} AND valid_to IS NULL",
            self.columns.join(", "),
            self.name,
            self.key_match(1, None)
        )
    }

    fn close_one(&self) -> String {
        format!(
            "UPDATE main.{} SET valid_to = ?1 WHERE {} AND valid_to IS NULL",
            self.name,
            self.key_match(2, None)
        )
    }

    fn insert(&self) -> String {
        let columns = self.all_columns();
        let marks: Vec<String> = (2..=columns.len() + 1).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO main.{} ({}, valid_from) VALUES ({}, ?1)",
            self.name,
            columns.join(", "),
            marks.join(", ")
        )
    }

    /// The insert of a table that held no current version when the run began: nothing to compare
    /// with, and a key listed twice in the run meets its own first row (same key, same
    /// `valid_from`) and is ignored.
    fn insert_fresh(&self) -> String {
        self.insert()
            .replacen("INSERT INTO", "INSERT OR IGNORE INTO", 1)
    }

    /// Whether the table holds any current version (served by the `*_current` partial index).
    fn any_current(&self) -> String {
        format!(
            "SELECT EXISTS (SELECT 1 FROM main.{} WHERE valid_to IS NULL)",
            self.name
        )
    }

    /// The keys this run has seen, in a temporary table of this connection.
    fn create_seen(&self) -> String {
        let columns: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{k} TEXT NOT NULL"))
            .collect();
        format!(
            "CREATE TEMP TABLE seen_{} ({}, PRIMARY KEY ({})) WITHOUT ROWID",
            self.name,
            columns.join(", "),
            self.key.join(", ")
        )
    }

    /// Records a key as seen; changes no row when the run saw it already.
    fn mark_seen(&self) -> String {
        let marks: Vec<String> = (1..=self.key.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT OR IGNORE INTO temp.seen_{} ({}) VALUES ({})",
            self.name,
            self.key.join(", "),
            marks.join(", ")
        )
    }

    /// Closes every current version this run never saw (vanished objects).
    fn close_unseen(&self) -> String {
        let key_match: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("s.{k} = main.{}.{k}", self.name))
            .collect();
        format!(
            "UPDATE main.{name} SET valid_to = ?1 WHERE valid_to IS NULL AND valid_from < ?1 \
             AND NOT EXISTS (SELECT 1 FROM temp.seen_{name} s WHERE {})",
            key_match.join(" AND "),
            name = self.name
        )
    }
}

/// A row's values in column order (key columns first).
type Row = Vec<Option<String>>;

/// How a listed object compares with its stored current version.
enum Stored {
    Absent,
    Unchanged,
    Changed,
}

/// One snapshot being written. It lives on the writer thread.
///
/// It keeps no copy of the stored state: each listed object is compared with its current version
/// by key in SQL, and the keys seen are kept in a temporary table on disk, so memory does not grow
/// with the organization.
pub struct SnapshotWriter {
    conn: Connection,
    path: String,
    run_id: i64,
    organization: Option<Organization>,
    /// Distinct objects seen per table, in `TABLES` order.
    seen: [u64; 5],
    /// Per table, in `TABLES` order: it held no current version when the run began (the first
    /// snapshot), so its rows are inserted without comparing or tracking what was seen.
    fresh: [bool; 5],
    /// Ids of the `admin`/`primary_owner` members seen, for the plausibility mark.
    admins: HashSet<String>,
}

impl SnapshotWriter {
    pub(super) fn begin(conn: Connection, path: String, run_id: i64) -> Result<SnapshotWriter> {
        let mut writer = SnapshotWriter {
            conn,
            path,
            run_id,
            organization: None,
            seen: [0; 5],
            fresh: [false; 5],
            admins: HashSet::new(),
        };
        // A snapshot's transaction can dirty tens of megabytes; a larger page cache keeps SQLite
        // from spilling pages to the WAL mid-transaction (and rewriting them later). The keys
        // seen go to a temporary file (not memory), with SQLite's small default cache.
        writer
            .conn
            .execute_batch("PRAGMA main.cache_size = -32768; PRAGMA temp_store = FILE;")
            .map_err(|e| writer.err(e))?;
        // Four statements per table, used in turn page after page.
        writer
            .conn
            .set_prepared_statement_cache_capacity(4 * TABLES.len() + 4);
        for table in TABLES {
            writer
                .conn
                .execute_batch(&table.create_seen())
                .map_err(|e| writer.err(e))?;
        }
        // Every later statement is part of this one transaction until `finish`.
        writer
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| writer.err(e))?;
        for (idx, table) in TABLES.iter().enumerate() {
            let any: bool = writer
                .conn
                .query_row(&table.any_current(), [], |row| row.get(0))
                .map_err(|e| writer.err(e))?;
            writer.fresh[idx] = !any;
        }
        Ok(writer)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Compares one page with the current versions and writes only what changed.
    fn stage(&mut self, table_idx: usize, rows: &[Row]) -> Result<()> {
        let table = TABLES[table_idx];
        let run_id = self.run_id;
        let n_key = table.key.len();
        let sql_err = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        if self.fresh[table_idx] {
            let mut insert = self
                .conn
                .prepare_cached(&table.insert_fresh())
                .map_err(sql_err)?;
            let mut n_seen = 0;
            for row in rows {
                let mut values: Vec<&dyn ToSql> = Vec::with_capacity(row.len() + 1);
                values.push(&run_id);
                values.extend(row.iter().map(|v| v as &dyn ToSql));
                n_seen += insert.execute(values.as_slice()).map_err(sql_err)? as u64;
            }
            drop(insert);
            self.seen[table_idx] += n_seen;
            return Ok(());
        }
        let mut mark = self
            .conn
            .prepare_cached(&table.mark_seen())
            .map_err(sql_err)?;
        let mut current = self
            .conn
            .prepare_cached(&table.select_current_one())
            .map_err(sql_err)?;
        let mut close = self
            .conn
            .prepare_cached(&table.close_one())
            .map_err(sql_err)?;
        let mut insert = self.conn.prepare_cached(&table.insert()).map_err(sql_err)?;
        let mut n_seen = 0;
        for row in rows {
            let key = &row[..n_key];
            if mark.execute(params_from_iter(key)).map_err(sql_err)? == 0 {
                // Listed twice in one run: the first occurrence stands.
                continue;
            }
            n_seen += 1;
            let stored = {
                let mut found = current.query(params_from_iter(key)).map_err(sql_err)?;
                match found.next().map_err(sql_err)? {
                    None => Stored::Absent,
                    Some(old) => {
                        let same = row[n_key..].iter().enumerate().all(|(idx, value)| {
                            old.get_ref(idx)
                                .ok()
                                .and_then(|v| v.as_str_or_null().ok())
                                .is_some_and(|old| old == value.as_deref())
                        });
                        if same {
                            Stored::Unchanged
                        } else {
                            Stored::Changed
                        }
                    }
                }
            };
            match stored {
                Stored::Unchanged => continue,
                Stored::Changed => {
                    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(n_key + 1);
                    values.push(&run_id);
                    values.extend(key.iter().map(|v| v as &dyn ToSql));
                    close.execute(values.as_slice()).map_err(sql_err)?;
                }
                Stored::Absent => {}
            }
            let mut values: Vec<&dyn ToSql> = Vec::with_capacity(row.len() + 1);
            values.push(&run_id);
            values.extend(row.iter().map(|v| v as &dyn ToSql));
            insert.execute(values.as_slice()).map_err(sql_err)?;
        }
        drop((mark, current, close, insert));
        self.seen[table_idx] += n_seen;
        Ok(())
    }

    pub fn organization(&mut self, organization: Organization) {
        self.organization = Some(organization);
    }

    pub fn members(&mut self, page: &[User]) -> Result<()> {
        let rows: Vec<_> = page
            .iter()
            .inspect(|u| {
                if u.role.is_admin() {
                    self.admins.insert(u.id.clone());
                }
            })
            .map(|u| {
                vec![
                    Some(u.id.clone()),
                    Some(u.email.clone()),
                    Some(u.name.clone()),
                    Some(u.role.to_string()),
                    Some(ts(&u.added_at)),
                ]
            })
            .collect();
        self.stage(0, &rows)?;
        Ok(())
    }

    pub fn invites(&mut self, page: &[Invite]) -> Result<()> {
        let rows: Vec<_> = page
            .iter()
            .map(|i| {
                vec![
                    Some(i.id.clone()),
                    Some(i.email.clone()),
                    Some(i.role.to_string()),
                    Some(i.status.to_string()),
                    Some(ts(&i.invited_at)),
                    Some(ts(&i.expires_at)),
                    i.accepted_at.as_ref().map(ts),
                ]
            })
            .collect();
        self.stage(1, &rows)?;
        Ok(())
    }

    pub fn workspaces(&mut self, page: &[Workspace]) -> Result<()> {
        let rows: Vec<_> = page
            .iter()
            .map(|w| {
                vec![
                    Some(w.id.clone()),
                    Some(w.name.clone()),
                    Some(w.display_color.clone()),
                    Some(ts(&w.created_at)),
                    w.archived_at.as_ref().map(ts),
                ]
            })
            .collect();
        self.stage(2, &rows)?;
        Ok(())
    }

    pub fn workspace_members(&mut self, page: &[WorkspaceMember]) -> Result<()> {
        let rows: Vec<_> = page
            .iter()
            .map(|m| {
                vec![
                    Some(m.workspace_id.clone()),
                    Some(m.user_id.clone()),
                    Some(m.workspace_role.to_string()),
                ]
            })
            .collect();
        self.stage(3, &rows)?;
        Ok(())
    }

    pub fn api_keys(&mut self, page: &[ApiKey]) -> Result<()> {
        let rows: Vec<_> = page
            .iter()
            .map(|k| {
                vec![
                    Some(k.id.clone()),
                    Some(k.name.clone()),
                    k.workspace_id.clone(),
                    Some(ts(&k.created_at)),
                    k.created_by.as_ref().map(|a| a.id.clone()),
                    k.created_by.as_ref().map(|a| a.kind.clone()),
                    k.partial_key_hint.clone(),
                    Some(k.status.to_string()),
                    k.expires_at.as_ref().map(ts),
                    k.principal.as_ref().map(|p| p.kind.clone()),
                    k.principal.as_ref().and_then(|p| p.user_id.clone()),
                    k.principal
                        .as_ref()
                        .and_then(|p| p.service_account_id.clone()),
                    k.scope.as_ref().map(|s| s.kind.clone()),
                    k.scope.as_ref().and_then(|s| s.workspace_id.clone()),
                ]
            })
            .collect();
        self.stage(4, &rows)?;
        Ok(())
    }

    /// Writes the pages this transaction has dirtied to the WAL now (uncommitted: nothing
    /// becomes visible, a rollback still discards them), so that the commit has less to write
    /// once the last page is in. Called when an organization-wide list has been read, while
    /// the rest is still being fetched; a page dirtied again later is written again, so not
    /// after every page. A flush that cannot be done now is left to the commit.
    pub fn flush_cache(&mut self) {
        if let Err(error) = self.conn.cache_flush() {
            tracing::debug!("snapshot writer: cache flush left to the commit: {error}");
        }
    }

    /// Folds the staged lists into the history and marks the run complete, atomically.
    pub fn finish(mut self, requests: u64, retries: u64, now: DateTime<Utc>) -> Result<Counts> {
        let Some(organization) = self.organization.take() else {
            return Err(StoreError::Other {
                path: self.path.clone(),
                message: "snapshot finished without the organization".to_owned(),
            });
        };
        let counts = Counts {
            members: self.seen[0],
            invites: self.seen[1],
            workspaces: self.seen[2],
            workspace_members: self.seen[3],
            api_keys: self.seen[4],
        };
        // What was current and never seen in this run has vanished (a fresh table had nothing
        // current).
        for (table, fresh) in TABLES.iter().zip(self.fresh) {
            if fresh {
                continue;
            }
            self.conn
                .execute(&table.close_unseen(), [self.run_id])
                .map_err(|e| self.err(e))?;
        }
        self.conn
            .execute(
                "UPDATE runs SET status = 'complete', finished_at = ?2, org_id = ?3, org_name = ?4, \
                 n_members = ?5, n_invites = ?6, n_workspaces = ?7, n_workspace_members = ?8, \
                 n_api_keys = ?9, requests = ?10, retries = ?11, n_admins = ?12, suspect = ?13 \
                 WHERE id = ?1",
                params![
                    self.run_id,
                    ts(&now),
                    organization.id,
                    organization.name,
                    counts.members,
                    counts.invites,
                    counts.workspaces,
                    counts.workspace_members,
                    counts.api_keys,
                    requests,
                    retries,
                    self.admins.len() as u64,
                    crate::remediate::implausible(counts, self.admins.len() as u64)
                ],
            )
            .map_err(|e| self.err(e))?;
        let payload = serde_json::json!({
            "job": "snapshot",
            "run_id": self.run_id,
            "members": counts.members,
            "invites": counts.invites,
            "workspaces": counts.workspaces,
            "workspace_members": counts.workspace_members,
            "api_keys": counts.api_keys,
        });
        super::events::insert(&self.conn, &now, "run.finished", payload)
            .map_err(|e| self.err(e))?;
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
        Ok(counts)
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            // Not finished: nothing of this run may become visible.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}
