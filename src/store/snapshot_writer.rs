//! Writes one snapshot inside one transaction, page by page, on its own connection.
//!
//! At the start the writer loads a digest of every current version. Each page is then compared
//! row by row as it arrives: an unchanged row costs no SQL, a changed one closes its old version
//! and inserts a new one, a new one is inserted. `finish` closes the versions this run never saw
//! (vanished objects) and marks the run complete, in the same transaction, so little work is left
//! once the last page arrives. Dropping the writer without `finish` rolls everything back, so a
//! failed snapshot leaves no partial data anywhere.

use super::Context as _;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, ToSql};

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

    fn select_current(&self) -> String {
        format!(
            "SELECT {} FROM main.{} WHERE valid_to IS NULL",
            self.all_columns().join(", "),
            self.name
        )
    }

    fn close_one(&self) -> String {
        let key_match: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(idx, k)| format!("{k} = ?{}", idx + 2))
            .collect();
        format!(
            "UPDATE main.{} SET valid_to = ?1 WHERE {} AND valid_to IS NULL",
            self.name,
            key_match.join(" AND ")
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
}

/// A row's values in column order (key columns first).
type Row = Vec<Option<String>>;

/// A 128-bit digest of a row, to tell "unchanged" without keeping every value in memory.
fn digest(row: &Row) -> u128 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    // Two independently salted SipHash runs; both sides of a comparison are computed in the same
    // process, so the hasher's fixed keys need not be stable across versions.
    let mut a = DefaultHasher::new();
    let mut b = DefaultHasher::new();
    0xA5u8.hash(&mut b);
    row.hash(&mut a);
    row.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

fn key_of(table: &Table, row: &Row) -> String {
    let mut key = String::new();
    for (idx, value) in row.iter().take(table.key.len()).enumerate() {
        if idx > 0 {
            key.push('\u{1f}');
        }
        key.push_str(value.as_deref().unwrap_or_default());
    }
    key
}

/// The current versions of one table, and what this run has seen of it.
struct Current {
    /// Key → digest of the current version; entries are removed as the run sees them, so what
    /// remains at the end vanished.
    open: HashMap<String, u128>,
    seen: HashSet<String>,
}

/// One snapshot being written. It lives on the writer thread.
pub struct SnapshotWriter {
    conn: Connection,
    path: String,
    run_id: i64,
    organization: Option<Organization>,
    current: Vec<Current>,
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
            current: Vec::new(),
            admins: HashSet::new(),
        };
        // A snapshot's transaction can dirty tens of megabytes; a larger page cache keeps SQLite
        // from spilling pages to the WAL mid-transaction (and rewriting them later).
        writer
            .conn
            .execute_batch("PRAGMA cache_size = -32768;")
            .ctx(&writer)?;
        // Every later statement is part of this one transaction until `finish`.
        writer.conn.execute_batch("BEGIN IMMEDIATE").ctx(&writer)?;
        for table in TABLES {
            let current = writer.load_current(table)?;
            writer.current.push(current);
        }
        Ok(writer)
    }

    fn load_current(&self, table: &Table) -> Result<Current> {
        let n_columns = table.all_columns().len();
        let mut stmt = self.conn.prepare(&table.select_current()).ctx(self)?;
        let rows = stmt
            .query_map([], |r| {
                (0..n_columns)
                    .map(|idx| r.get::<_, Option<String>>(idx))
                    .collect::<rusqlite::Result<Row>>()
            })
            .ctx(self)?;
        let mut open = HashMap::new();
        for row in rows {
            let row = row.ctx(self)?;
            open.insert(key_of(table, &row), digest(&row));
        }
        Ok(Current {
            open,
            seen: HashSet::new(),
        })
    }

    /// Compares one page with the current versions and writes only what changed.
    fn stage(&mut self, table_idx: usize, rows: &[Row]) -> Result<()> {
        let table = TABLES[table_idx];
        let run_id = self.run_id;
        let path = self.path.clone();
        let sql_err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let current = &mut self.current[table_idx];
        for row in rows {
            let key = key_of(table, row);
            if !current.seen.insert(key.clone()) {
                // Listed twice in one run: the first occurrence stands.
                continue;
            }
            let changed = match current.open.remove(&key) {
                Some(old) if old == digest(row) => continue,
                Some(_) => true,
                None => false,
            };
            if changed {
                let mut close = self
                    .conn
                    .prepare_cached(&table.close_one())
                    .map_err(sql_err)?;
                let mut values: Vec<&dyn ToSql> = vec![&run_id];
                values.extend(row.iter().take(table.key.len()).map(|v| v as &dyn ToSql));
                close.execute(values.as_slice()).map_err(sql_err)?;
            }
            let mut insert = self.conn.prepare_cached(&table.insert()).map_err(sql_err)?;
            let mut values: Vec<&dyn ToSql> = vec![&run_id];
            values.extend(row.iter().map(|v| v as &dyn ToSql));
            insert.execute(values.as_slice()).map_err(sql_err)?;
        }
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
                ]
            })
            .collect();
        self.stage(4, &rows)?;
        Ok(())
    }

    /// Folds the staged lists into the history and marks the run complete, atomically.
    pub fn finish(mut self, requests: u64, retries: u64, now: DateTime<Utc>) -> Result<Counts> {
        let Some(organization) = self.organization.take() else {
            return Err(StoreError::Other {
                path: self.path.clone(),
                message: "snapshot finished without the organization".to_owned(),
            });
        };
        let mut counts = Counts::default();
        for (table_idx, table) in TABLES.iter().enumerate() {
            let current = &mut self.current[table_idx];
            let n = current.seen.len() as u64;
            match table.name {
                "members" => counts.members = n,
                "invites" => counts.invites = n,
                "workspaces" => counts.workspaces = n,
                "workspace_members" => counts.workspace_members = n,
                _ => counts.api_keys = n,
            }
            // What was current and never seen in this run has vanished.
            let vanished: Vec<String> = current.open.drain().map(|(key, _)| key).collect();
            let mut close = self
                .conn
                .prepare_cached(&table.close_one())
                .map_err(|source| StoreError::Sqlite {
                    path: self.path.clone(),
                    source,
                })?;
            for key in vanished {
                let parts: Vec<&str> = key.split('\u{1f}').collect();
                let mut values: Vec<&dyn ToSql> = vec![&self.run_id];
                values.extend(parts.iter().map(|v| v as &dyn ToSql));
                close
                    .execute(values.as_slice())
                    .map_err(|source| StoreError::Sqlite {
                        path: self.path.clone(),
                        source,
                    })?;
            }
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
            .ctx(&self)?;
        self.conn.execute_batch("COMMIT").ctx(&self)?;
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

impl super::Database for SnapshotWriter {
    fn database(&self) -> String {
        self.path.clone()
    }
}
