//! Writes one snapshot inside one transaction, page by page, on its own connection.
//!
//! Pages are staged in temporary tables as they arrive; `finish` then closes the versions that
//! changed or vanished, inserts the new ones and marks the run complete, all in the same
//! transaction. Dropping the writer without `finish` rolls everything back, so a failed snapshot
//! leaves no partial data anywhere.

use chrono::Utc;
use rusqlite::{params, Connection, ToSql};

use super::{ts, Counts, Result, StoreError};
use crate::admin_api::models::{ApiKey, Invite, Organization, User, Workspace, WorkspaceMember};

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

    fn create_stage(&self) -> String {
        let columns = self.all_columns().join(", ");
        format!(
            "CREATE TEMP TABLE IF NOT EXISTS stage_{name} AS SELECT {columns} FROM main.{name} WHERE 0;
             DELETE FROM temp.stage_{name};
             CREATE UNIQUE INDEX IF NOT EXISTS temp.stage_{name}_key ON stage_{name} ({key});",
            name = self.name,
            key = self.key.join(", "),
        )
    }

    fn insert_stage(&self) -> String {
        let columns = self.all_columns();
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT OR REPLACE INTO temp.stage_{} ({}) VALUES ({})",
            self.name,
            columns.join(", "),
            marks.join(", ")
        )
    }

    /// Closes current versions that are absent from the stage or differ from it.
    fn close_changed(&self) -> String {
        // Keys are never NULL and compare with `=` so the stage's unique index is used; the other
        // columns may be NULL and compare with `IS`.
        let same: Vec<String> = self
            .key
            .iter()
            .map(|c| format!("s.{c} = main.{name}.{c}", name = self.name))
            .chain(
                self.columns
                    .iter()
                    .map(|c| format!("s.{c} IS main.{name}.{c}", name = self.name)),
            )
            .collect();
        format!(
            "UPDATE main.{name} SET valid_to = ?1 WHERE valid_to IS NULL AND NOT EXISTS \
             (SELECT 1 FROM temp.stage_{name} s WHERE {same})",
            name = self.name,
            same = same.join(" AND ")
        )
    }

    /// Inserts a version for every staged row that has no current version (new or just closed).
    fn insert_new(&self) -> String {
        let columns = self.all_columns();
        let key_match: Vec<String> = self.key.iter().map(|k| format!("m.{k} = s.{k}")).collect();
        let selected: Vec<String> = columns.iter().map(|c| format!("s.{c}")).collect();
        format!(
            "INSERT INTO main.{name} ({columns}, valid_from) SELECT {selected}, ?1 FROM temp.stage_{name} s \
             WHERE NOT EXISTS (SELECT 1 FROM main.{name} m WHERE {key_match} AND m.valid_to IS NULL)",
            name = self.name,
            columns = columns.join(", "),
            selected = selected.join(", "),
            key_match = key_match.join(" AND ")
        )
    }
}

/// One snapshot being written. Not `Send`-shared: it lives on the writer thread.
pub struct SnapshotWriter {
    conn: Connection,
    path: String,
    run_id: i64,
    organization: Option<Organization>,
    counts: Counts,
}

impl SnapshotWriter {
    pub(super) fn begin(conn: Connection, path: String, run_id: i64) -> Result<SnapshotWriter> {
        let writer = SnapshotWriter {
            conn,
            path,
            run_id,
            organization: None,
            counts: Counts::default(),
        };
        for table in TABLES {
            writer
                .conn
                .execute_batch(&table.create_stage())
                .map_err(|e| writer.err(e))?;
        }
        // Every later statement is part of this one transaction until `finish`.
        writer
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| writer.err(e))?;
        Ok(writer)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn stage(&mut self, table: &Table, rows: &[Vec<Option<String>>]) -> Result<u64> {
        let sql = table.insert_stage();
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .map_err(|e| StoreError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
        for row in rows {
            let values: Vec<&dyn ToSql> = row.iter().map(|v| v as &dyn ToSql).collect();
            stmt.execute(values.as_slice())
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
        }
        Ok(rows.len() as u64)
    }

    pub fn organization(&mut self, organization: Organization) {
        self.organization = Some(organization);
    }

    pub fn members(&mut self, page: &[User]) -> Result<()> {
        let rows: Vec<_> = page
            .iter()
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
        self.counts.members += self.stage(&MEMBERS, &rows)?;
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
        self.counts.invites += self.stage(&INVITES, &rows)?;
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
        self.counts.workspaces += self.stage(&WORKSPACES, &rows)?;
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
        self.counts.workspace_members += self.stage(&WORKSPACE_MEMBERS, &rows)?;
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
        self.counts.api_keys += self.stage(&API_KEYS, &rows)?;
        Ok(())
    }

    /// Folds the staged lists into the history and marks the run complete, atomically.
    pub fn finish(mut self, requests: u64, retries: u64) -> Result<Counts> {
        let Some(organization) = self.organization.take() else {
            return Err(StoreError::Other {
                path: self.path.clone(),
                message: "snapshot finished without the organization".to_owned(),
            });
        };
        // Unique indexes on the stage may have folded duplicates: count what is really there.
        let mut counts = Counts::default();
        for table in TABLES {
            let n: u64 = self
                .conn
                .query_row(
                    &format!("SELECT count(*) FROM temp.stage_{}", table.name),
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            match table.name {
                "members" => counts.members = n,
                "invites" => counts.invites = n,
                "workspaces" => counts.workspaces = n,
                "workspace_members" => counts.workspace_members = n,
                _ => counts.api_keys = n,
            }
            self.conn
                .execute(&table.close_changed(), [self.run_id])
                .map_err(|e| self.err(e))?;
            self.conn
                .execute(&table.insert_new(), [self.run_id])
                .map_err(|e| self.err(e))?;
        }
        self.conn
            .execute(
                "UPDATE runs SET status = 'complete', finished_at = ?2, org_id = ?3, org_name = ?4, \
                 n_members = ?5, n_invites = ?6, n_workspaces = ?7, n_workspace_members = ?8, \
                 n_api_keys = ?9, requests = ?10, retries = ?11 WHERE id = ?1",
                params![
                    self.run_id,
                    ts(&Utc::now()),
                    organization.id,
                    organization.name,
                    counts.members,
                    counts.invites,
                    counts.workspaces,
                    counts.workspace_members,
                    counts.api_keys,
                    requests,
                    retries
                ],
            )
            .map_err(|e| self.err(e))?;
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
        for table in TABLES {
            // Empty the stage so the temp store does not hold a copy of the organization.
            let _ = self
                .conn
                .execute_batch(&format!("DELETE FROM temp.stage_{}", table.name));
        }
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
