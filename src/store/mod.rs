//! The SQLite store: snapshot runs, the versioned history of the organization, and (in later
//! schemas) findings, actions and the mail outbox.
//!
//! **Invariant:** this is the only module that writes SQL. Schemas live in `sql/NNN_*.sql` and are
//! applied in order, in one transaction, when a database is opened; `PRAGMA user_version` records
//! how far a database is. A database written by a newer orgwarden is refused.
//!
//! **Invariant:** one writer at a time. Writers hold an exclusive `flock` on `<db>.lock`, whose
//! content names the holder; a second writer fails at once with that name instead of waiting or
//! corrupting anything. Readers take no lock (WAL lets them read while a writer writes).

mod actions;
mod alerts;
mod directories;
mod events;
mod findings;
mod lock;
mod metrics;
mod notices;
mod outbox;
mod snapshot_writer;
mod usage;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

pub use crate::org::{ts, Counts, RunRecord, RunStatus};
pub use crate::policy::records::{ActionRecord, ActionStatus, FindingRecord, FindingStatus};
pub use actions::{ActionOutcome, NewAction};
pub use alerts::{AlertRow, PendingAlerts};
pub use directories::DirectoryReadRecord;
pub use events::{EventRecord, EventsSince};
pub use findings::{AuditRecord, AuditResult, ReportKind, ReportRecord};
pub use lock::{LockProbe, WriterLock};
pub use outbox::{
    NewOutboxMessage, OutboxAttempt, OutboxCounts, OutboxMessage, OutboxRecord, OutboxStatus,
    RefusedRecipient,
};
pub use snapshot_writer::SnapshotWriter;
pub use usage::{
    covered_range, AccountDay, CodeActor, CodeDay, IngestRecord, KeyDay, StoredDay, UsageChunk,
    UsageChunkWrite,
};

use crate::org::OrgState;
use crate::org::{
    Actor, ApiKey, Invite, KeyScope, OrgRole, Organization, Principal, User, Workspace,
    WorkspaceMember, WorkspaceRole,
};

/// The schema steps, in order. Never edit one that has shipped: add a new file.
const MIGRATIONS: &[&str] = &[
    include_str!("sql/001_snapshots.sql"),
    include_str!("sql/002_findings.sql"),
    include_str!("sql/003_outbox.sql"),
    include_str!("sql/004_actions.sql"),
    include_str!("sql/005_baseline.sql"),
    include_str!("sql/006_outbox_recipients.sql"),
    include_str!("sql/007_report_kind.sql"),
    include_str!("sql/008_alerts.sql"),
    include_str!("sql/009_events.sql"),
    include_str!("sql/010_owner_notices.sql"),
    include_str!("sql/011_usage.sql"),
    include_str!("sql/012_key_scope.sql"),
    include_str!("sql/013_directories.sql"),
    include_str!("sql/014_usage_by_day.sql"),
    include_str!("sql/015_ended_versions.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}, but this orgwarden only knows up to {known}: it was written by a newer orgwarden; upgrade orgwarden instead of downgrading the database")]
    TooNew {
        path: String,
        found: u32,
        known: u32,
    },
    #[error("{}", locked_message(path, holder))]
    Locked { path: String, holder: String },
    #[error("database {path} is corrupt ({detail}); nothing was written. Restore it from a backup, or move it aside (with its -wal and -shm files) and orgwarden starts a new, empty history there")]
    Corrupt { path: String, detail: String },
    #[error("database {path} has schema version {found}, older than this orgwarden's {known}, and cannot be upgraded here ({why}); run a writing command (`orgwarden snapshot`) where the database is writable, or use the orgwarden that wrote it")]
    TooOld {
        path: String,
        found: u32,
        known: u32,
        why: String,
    },
    #[error("database {path}: {message}")]
    Other { path: String, message: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The refusal of a second writer: the daemon gets a next step, another command a name.
fn locked_message(path: &str, holder: &str) -> String {
    if holder.contains(&format!("`{}`", DAEMON_HOLDER)) {
        let pid = holder
            .strip_prefix("pid ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("?");
        format!(
            "database {path}: the daemon (pid {pid}) holds the database; use its schedule or stop it \
             (holder: {holder})"
        )
    } else {
        format!(
            "database {path} is in use by another orgwarden ({holder}); only one process may write \
             at a time: wait for it to finish"
        )
    }
}

/// The holder name `orgwarden run` writes into the lock.
pub const DAEMON_HOLDER: &str = "orgwarden run";

impl StoreError {
    /// True when the database file itself is damaged.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }
}

/// SQLite's own words for a damaged file.
fn is_corruption(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Something whose errors name a database file.
pub(crate) trait Database {
    fn database(&self) -> String;
}

/// `.ctx(db)`: a rusqlite error as a [`StoreError`] naming the database, so that queries read
/// `conn.execute(...).ctx(self)?` instead of a closure each.
pub(crate) trait Context<T> {
    fn ctx(self, db: &(impl Database + ?Sized)) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, rusqlite::Error> {
    fn ctx(self, db: &(impl Database + ?Sized)) -> Result<T> {
        self.map_err(|source| StoreError::Sqlite {
            path: db.database(),
            source,
        })
    }
}

impl Database for String {
    fn database(&self) -> String {
        self.clone()
    }
}

impl Database for str {
    fn database(&self) -> String {
        self.to_owned()
    }
}

impl Database for Store {
    fn database(&self) -> String {
        self.path_text()
    }
}

/// What retention removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneStats {
    pub runs: u64,
    pub versions: u64,
    /// Directory reads removed (see [`Store::prune`]).
    pub directory_reads: u64,
    /// Directory people's versions removed.
    pub directory_versions: u64,
    /// Usage days (with their rows) older than retention (`Store::prune_usage`).
    pub usage_days: u64,
}

/// An open database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Held for the life of a writing store; `None` for a reader.
    lock: Option<WriterLock>,
    /// A reader that found no writer holding the lock: runs still `running` were left by a
    /// process that is gone and are shown `abandoned` (the next writer records it).
    writer_gone: bool,
    /// A private in-memory copy ([`Store::open_preview`]): writable, but nothing reaches the file.
    scratch: bool,
    /// The WAL checkpoint [`Store::checkpoint_apart`] started, joined before the next one and
    /// when the store closes (so that a one-shot command does not exit in the middle of it).
    checkpointing: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(thread) = self.checkpointing.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("writer", &self.lock.is_some())
            .finish()
    }
}

pub(crate) fn parse_ts(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    // The form `ts` writes (or whole seconds) is read field by field: a snapshot holds a few
    // hundred thousand timestamps.
    if let Some(time) = crate::org::parse_fixed_utc(text) {
        return Ok(time);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

/// The text in column `idx`, borrowed: an open enum is made from it without a copy when the
/// value is one it knows.
fn text_at<'r>(row: &'r rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<&'r str> {
    Ok(row.get_ref(idx)?.as_str()?)
}

/// The timestamp in column `idx`, parsed without copying the text.
fn ts_at(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    parse_ts(row.get_ref(idx)?.as_str()?)
}

/// The optional timestamp in column `idx`, parsed without copying the text.
fn opt_ts_at(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get_ref(idx)?
        .as_str_or_null()?
        .map(parse_ts)
        .transpose()
}

/// The columns [`key_from_row`] reads, in its order.
const KEY_COLUMNS: &str = "id, name, workspace_id, created_at, created_by_id, created_by_type, \
    partial_key_hint, status, expires_at, principal_type, principal_user_id, principal_sa_id, \
    scope_type, scope_workspace_id";

/// An API key from the columns [`KEY_COLUMNS`].
fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    let created_by = match (
        row.get::<_, Option<String>>(4)?,
        row.get::<_, Option<String>>(5)?,
    ) {
        (Some(id), Some(kind)) => Some(Actor { id, kind }),
        _ => None,
    };
    let principal = row.get::<_, Option<String>>(9)?.map(|kind| Principal {
        kind,
        user_id: row.get(10).ok().flatten(),
        service_account_id: row.get(11).ok().flatten(),
    });
    let scope = row.get::<_, Option<String>>(12)?.map(|kind| KeyScope {
        kind,
        workspace_id: row.get(13).ok().flatten(),
    });
    Ok(ApiKey {
        id: row.get(0)?,
        name: row.get(1)?,
        workspace_id: row.get(2)?,
        created_at: ts_at(row, 3)?,
        created_by,
        partial_key_hint: row.get(6)?,
        status: text_at(row, 7)?.into(),
        expires_at: opt_ts_at(row, 8)?,
        principal,
        scope,
    })
}

/// The rows of `sql` with `params` on `conn`, each made a value by `map`, in a vector of
/// `capacity`; errors name `db`.
fn query_rows<T>(
    conn: &Connection,
    db: &(impl Database + ?Sized),
    capacity: u64,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql).ctx(db)?;
    let rows = stmt.query_map(params, map).ctx(db)?;
    // A count that is off (or absurd) only costs a reallocation.
    let mut out = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0).min(1 << 24));
    for row in rows {
        out.push(row.ctx(db)?);
    }
    Ok(out)
}

/// A string between `low` and `high` in byte order: their common prefix and then the byte
/// halfway between their first differing (ASCII) bytes; `None` when there is none such (the
/// bytes are adjacent, or not ASCII). Ids drawn from an alphabet split near their median.
fn middle_between(low: &str, high: &str) -> Option<String> {
    let (a, b) = (low.as_bytes(), high.as_bytes());
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (&x, &y) = (a.get(common)?, b.get(common)?);
    let middle = x / 2 + y / 2 + (x % 2 + y % 2) / 2;
    if !(x.is_ascii() && y.is_ascii()) || middle <= x {
        return None;
    }
    let mut out = a[..common].to_vec();
    out.push(middle);
    String::from_utf8(out).ok()
}

/// One reader of a snapshot's API keys: a read-only connection and its query (`?1` the run,
/// `?2`, when there is a `middle`, where its half of the ids starts or ends).
struct KeyReader {
    conn: Connection,
    sql: String,
    middle: Option<String>,
    /// The lower half (or the only reader).
    lower: bool,
}

impl KeyReader {
    /// Reads this reader's keys of run `run_id`, of the `count` the run holds, sorted by
    /// [`key_order`] (here, on the reader's thread). The lower half's vector has room for all
    /// of them: the upper half is merged into it.
    fn read(&self, db: &str, run_id: i64, count: u64) -> Result<Vec<ApiKey>> {
        let mut keys = match &self.middle {
            Some(middle) => query_rows(
                &self.conn,
                db,
                if self.lower { count } else { count / 2 + 1 },
                &self.sql,
                params![run_id, middle],
                key_from_row,
            ),
            None => query_rows(&self.conn, db, count, &self.sql, [run_id], key_from_row),
        }?;
        crate::order::sort_large_by(&mut keys, key_order);
        Ok(keys)
    }
}

/// The order of a snapshot's keys: creation time, then id (unique within a snapshot).
fn key_order(a: &ApiKey, b: &ApiKey) -> std::cmp::Ordering {
    (a.created_at, &a.id).cmp(&(b.created_at, &b.id))
}

/// A member from the columns `id, email, name, role, added_at`.
fn member_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        name: row.get(2)?,
        role: text_at(row, 3)?.into(),
        added_at: ts_at(row, 4)?,
    })
}

/// A workspace membership from the columns `workspace_id, user_id, workspace_role`.
fn membership_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WorkspaceMember> {
    Ok(WorkspaceMember {
        workspace_id: row.get(0)?,
        user_id: row.get(1)?,
        workspace_role: text_at(row, 2)?.into(),
    })
}

fn parse_opt_ts(text: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    text.as_deref().map(parse_ts).transpose()
}

impl Store {
    /// Opens (creating it if needed) a database to write: takes the writer lock, applies
    /// migrations, and marks runs left `running` by a killed process as `abandoned`.
    pub fn open_writer(path: &Path, holder: &str, now: DateTime<Utc>) -> Result<Store> {
        Store::open_locked(path, holder, Some(now))
    }

    /// Takes the writer lock, creates or upgrades the schema and, given the time, marks
    /// interrupted runs abandoned (a reader upgrading the schema leaves that to the next writer).
    fn open_locked(path: &Path, holder: &str, now: Option<DateTime<Utc>>) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Other {
                path: path.display().to_string(),
                message: format!("cannot create directory {}: {e}", dir.display()),
            })?;
        }
        let lock = WriterLock::acquire(path, holder, now)?;
        Store::open_with_lock(path, lock, now)
    }

    /// Opens a database to write with a lock the caller already took (the demo takes it before
    /// it clears its directory).
    pub fn open_writer_locked(path: &Path, lock: WriterLock, now: DateTime<Utc>) -> Result<Store> {
        Store::open_with_lock(path, lock, Some(now))
    }

    fn open_with_lock(path: &Path, lock: WriterLock, now: Option<DateTime<Utc>>) -> Result<Store> {
        let conn = connect(path, false).and_then(|conn| {
            // Before anything is written (even the WAL pragma): a damaged file is refused.
            quick_check(&conn, path)?;
            configure(&conn, path)?;
            Ok(conn)
        })?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
            lock: Some(lock),
            writer_gone: false,
            scratch: false,
            checkpointing: None,
        };
        store.migrate()?;
        let Some(now) = now else {
            return Ok(store);
        };
        let abandoned = {
            let tx = store.conn.unchecked_transaction().ctx(&store)?;
            tx.execute(
                "INSERT INTO events (at, type, payload) \
                 SELECT ?1, 'run.failed', json_object('job', 'snapshot', 'run_id', id, \
                   'error', 'the process stopped before the run finished') \
                 FROM runs WHERE status = 'running' ORDER BY id",
                params![ts(&now)],
            )
            .ctx(&store)?;
            let n = tx
                .execute(
                    "UPDATE runs SET status = 'abandoned', finished_at = ?1, \
                     error = 'the process stopped before the run finished' WHERE status = 'running'",
                    params![ts(&now)],
                )
                .ctx(&store)?;
            tx.commit().ctx(&store)?;
            n
        };
        if abandoned > 0 {
            tracing::warn!(
                n_runs = abandoned,
                "marked interrupted snapshot runs as abandoned"
            );
        }
        Ok(store)
    }

    /// Opens an existing database to read, read-only: no lock, no migration, nothing written, so
    /// it works while the daemon writes and where the file or its directory is read-only.
    /// Refuses a missing file (with a hint) and a database whose schema is newer than this
    /// build; an older one is upgraded when that is possible here (writable, no writer running),
    /// else refused saying so.
    pub fn open_reader(path: &Path) -> Result<Store> {
        Store::open_reader_inner(path, true)
    }

    fn open_reader_inner(path: &Path, may_upgrade: bool) -> Result<Store> {
        if !path.exists() {
            return Err(StoreError::Other {
                path: path.display().to_string(),
                message: "no database yet; run `orgwarden snapshot` first".to_owned(),
            });
        }
        let writer_gone = WriterLock::probe(path) == LockProbe::Free;
        let conn = connect(path, true)?;
        let store = Store {
            conn,
            path: path.to_owned(),
            lock: None,
            writer_gone,
            scratch: false,
            checkpointing: None,
        };
        let version = store.user_version()?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: store.path_text(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            drop(store);
            let why = if may_upgrade {
                // Upgrading needs the writer lock; take it briefly.
                match Store::open_locked(path, "orgwarden (schema upgrade)", None) {
                    Ok(writer) => {
                        drop(writer);
                        return Store::open_reader_inner(path, false);
                    }
                    Err(error) => error.to_string(),
                }
            } else {
                "the upgrade did not take".to_owned()
            };
            return Err(StoreError::TooOld {
                path: path.display().to_string(),
                found: version,
                known: SCHEMA_VERSION,
                why,
            });
        }
        Ok(store)
    }

    /// A private in-memory copy of the database, read in one consistent transaction without any
    /// lock: the jobs run on it exactly as on the file (an audit is recorded, a plan made), and
    /// everything they write is dropped with it. This is how `audit --no-record`, `cleanup`
    /// without `--apply` and a report preview work while the daemon writes.
    pub fn open_preview(path: &Path) -> Result<Store> {
        let reader = Store::open_reader(path)?;
        let err = conn_err(path);
        let mut conn = Connection::open_in_memory().map_err(&err)?;
        {
            let backup = rusqlite::backup::Backup::new(&reader.conn, &mut conn).map_err(&err)?;
            // All pages in one step: one read transaction, so the copy is consistent.
            backup.step(-1).map_err(&err)?;
        }
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;")
            .map_err(&err)?;
        Ok(Store {
            conn,
            path: path.to_owned(),
            lock: None,
            writer_gone: reader.writer_gone,
            scratch: true,
            checkpointing: None,
        })
    }

    /// True for an [`open_preview`](Store::open_preview) copy.
    pub fn is_preview(&self) -> bool {
        self.scratch
    }

    /// `PRAGMA quick_check` on this connection: a corrupt file is [`StoreError::Corrupt`].
    pub fn quick_check(&self) -> Result<()> {
        quick_check(&self.conn, &self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn path_text(&self) -> String {
        self.path.display().to_string()
    }

    fn user_version(&self) -> Result<u32> {
        self.conn
            .query_row("PRAGMA user_version", [], |row| row.get::<_, u32>(0))
            .ctx(self)
    }

    /// Applies every missing schema step in one transaction.
    fn migrate(&mut self) -> Result<()> {
        let version = self.user_version()?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path_text(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let path = self.path_text();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| StoreError::Sqlite {
                path: path.clone(),
                source,
            })?;
        for (idx, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(step).map_err(|source| StoreError::Other {
                path: path.clone(),
                message: format!("schema step {} failed: {source}", idx + 1),
            })?;
        }
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
            .map_err(|source| StoreError::Sqlite {
                path: path.clone(),
                source,
            })?;
        tx.commit()
            .map_err(|source| StoreError::Sqlite { path, source })?;
        tracing::info!(
            from = version,
            to = SCHEMA_VERSION,
            "database schema upgraded"
        );
        Ok(())
    }

    // ---- Runs --------------------------------------------------------------------------------

    /// Records the start of a snapshot run (committed at once, so a crash leaves a trace).
    pub fn begin_run(&self, started_at: DateTime<Utc>) -> Result<i64> {
        self.require_writer()?;
        self.conn
            .execute(
                "INSERT INTO runs (status, started_at, pid) VALUES ('running', ?1, ?2)",
                params![ts(&started_at), std::process::id()],
            )
            .ctx(self)?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Marks a run failed with the error text; its data was never committed.
    pub fn fail_run(
        &self,
        run_id: i64,
        error: &str,
        requests: u64,
        retries: u64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let tx = self.conn.unchecked_transaction().ctx(self)?;
        tx.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?2, error = ?3, requests = ?4, \
             retries = ?5 WHERE id = ?1",
            params![run_id, ts(&now), error, requests, retries],
        )
        .ctx(self)?;
        let payload = serde_json::json!({"job": "snapshot", "run_id": run_id, "error": error});
        events::insert(&tx, &now, "run.failed", payload).ctx(self)?;
        tx.commit().ctx(self)?;
        Ok(())
    }

    /// A second connection for the snapshot writer thread; only for a writing store.
    pub fn snapshot_writer(&self, run_id: i64) -> Result<SnapshotWriter> {
        self.require_writer()?;
        if self.scratch {
            return Err(StoreError::Other {
                path: self.path_text(),
                message: "a preview copy cannot take snapshots".to_owned(),
            });
        }
        let conn = open_connection(&self.path)?;
        SnapshotWriter::begin(conn, self.path_text(), run_id)
    }

    fn require_writer(&self) -> Result<()> {
        if self.lock.is_none() && !self.scratch {
            return Err(StoreError::Other {
                path: self.path_text(),
                message: "opened read-only; this needs the writer lock".to_owned(),
            });
        }
        Ok(())
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        self.query_runs("SELECT * FROM runs ORDER BY id", [])
    }

    pub fn run(&self, run_id: i64) -> Result<Option<RunRecord>> {
        Ok(self
            .query_runs("SELECT * FROM runs WHERE id = ?1", [run_id])?
            .pop())
    }

    /// The newest complete run, optionally only those before `before`.
    pub fn latest_complete(&self, before: Option<i64>) -> Result<Option<RunRecord>> {
        Ok(self
            .query_runs(
                "SELECT * FROM runs WHERE status = 'complete' AND id < ?1 ORDER BY id DESC LIMIT 1",
                [before.unwrap_or(i64::MAX)],
            )?
            .pop())
    }

    /// How many complete runs there are from `from` up to and including `to`.
    pub fn complete_runs_between(&self, from: i64, to: i64) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM runs WHERE status = 'complete' AND id BETWEEN ?1 AND ?2",
                params![from, to],
                |row| row.get(0),
            )
            .ctx(self)
    }

    /// Snapshot runs that failed or were abandoned after run `after` (all when `None`), oldest
    /// first: the failures a report's period names.
    pub fn failed_runs_after(&self, after: Option<i64>) -> Result<Vec<RunRecord>> {
        self.query_runs(
            "SELECT * FROM runs WHERE status IN ('failed', 'abandoned') AND id > ?1 ORDER BY id",
            [after.unwrap_or(0)],
        )
    }

    /// The newest complete run taken at or before `at`: the snapshot a period starting at `at`
    /// is compared with.
    pub fn latest_complete_at(&self, at: DateTime<Utc>) -> Result<Option<RunRecord>> {
        Ok(self
            .query_runs(
                "SELECT * FROM runs WHERE status = 'complete' \
                 AND coalesce(finished_at, started_at) <= ?1 ORDER BY id DESC LIMIT 1",
                [ts(&at)],
            )?
            .pop())
    }

    /// The complete runs that finished at or after `since` and before run `before`, oldest
    /// first: the candidates for the population-drop guard's baseline.
    pub fn complete_runs_since(&self, since: DateTime<Utc>, before: i64) -> Result<Vec<RunRecord>> {
        self.query_runs(
            "SELECT * FROM runs WHERE status = 'complete' AND id < ?2 AND finished_at >= ?1 \
             ORDER BY id",
            params![ts(&since), before],
        )
    }

    /// The newest run an operator accepted as the baseline, up to and including `up_to`.
    pub fn last_accepted(&self, up_to: i64) -> Result<Option<RunRecord>> {
        Ok(self
            .query_runs(
                "SELECT * FROM runs WHERE status = 'complete' AND accepted_at IS NOT NULL \
                   AND id <= ?1 ORDER BY id DESC LIMIT 1",
                [up_to],
            )?
            .pop())
    }

    /// Records that `who` accepted complete run `run_id` as the baseline, in the run and in the
    /// audit trail (one transaction). Returns the updated run.
    pub fn accept_baseline(
        &mut self,
        run_id: i64,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<RunRecord> {
        self.require_writer()?;
        let run = self
            .run(run_id)?
            .filter(|r| r.status == RunStatus::Complete);
        let Some(run) = run else {
            return Err(StoreError::Other {
                path: self.path_text(),
                message: format!(
                    "run {run_id} is not a complete snapshot; only a complete one can be accepted as the baseline (see `orgwarden history`)"
                ),
            });
        };
        let counts = run.counts.unwrap_or_default();
        let reason = format!(
            "snapshot {run_id} ({} members, {} invites, {} API keys{}) accepted as the remediation baseline by {who}",
            counts.members,
            counts.invites,
            counts.api_keys,
            run.suspect
                .as_deref()
                .map(|s| format!("; suspect: {s}"))
                .unwrap_or_default()
        );
        let path = self.path_text();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&path)?;
        tx.execute(
            "UPDATE runs SET accepted_by = ?2, accepted_at = ?3 WHERE id = ?1",
            params![run_id, who, ts(&now)],
        )
        .ctx(&path)?;
        tx.execute(
            "INSERT INTO actions (run_id, action, subject_kind, subject_id, subject, finding, \
               status, reason, planned_at, finished_at) \
             VALUES (?1, 'accept_baseline', 'organization', ?2, ?3, ?4, 'succeeded', ?5, ?6, ?6)",
            params![
                run_id,
                format!("run {run_id}"),
                run.org_name.clone().unwrap_or_default(),
                format!(
                    "{}:organization:plausibility",
                    crate::policy::REMEDIATION_GUARD
                ),
                reason,
                ts(&now)
            ],
        )
        .ctx(&path)?;
        let id = tx.last_insert_rowid();
        events::insert_action(&tx, id, &now).ctx(&path)?;
        tx.commit().ctx(&path)?;
        self.run(run_id)?.ok_or_else(|| StoreError::Other {
            path: self.path_text(),
            message: format!("run {run_id} vanished"),
        })
    }

    fn query_runs<P: rusqlite::Params>(&self, sql: &str, params: P) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(sql).ctx(self)?;
        let rows = stmt
            .query_map(params, |row| {
                let status: String = row.get("status")?;
                let mut status = RunStatus::parse(&status);
                let mut error: Option<String> = row.get("error")?;
                if status == RunStatus::Running && self.writer_gone {
                    // Its process is gone (no one holds the lock): it can never finish.
                    status = RunStatus::Abandoned;
                    error = Some("the process stopped before the run finished".to_owned());
                }
                let n_members: Option<u64> = row.get("n_members")?;
                let counts = match n_members {
                    Some(members) => Some(Counts {
                        members,
                        invites: row.get("n_invites")?,
                        workspaces: row.get("n_workspaces")?,
                        workspace_members: row.get("n_workspace_members")?,
                        api_keys: row.get("n_api_keys")?,
                    }),
                    None => None,
                };
                Ok(RunRecord {
                    id: row.get("id")?,
                    status,
                    started_at: parse_ts(&row.get::<_, String>("started_at")?)?,
                    finished_at: parse_opt_ts(row.get("finished_at")?)?,
                    error,
                    org_id: row.get("org_id")?,
                    org_name: row.get("org_name")?,
                    counts,
                    requests: row.get("requests")?,
                    retries: row.get("retries")?,
                    admins: row.get("n_admins")?,
                    suspect: row.get("suspect")?,
                    accepted_by: row.get("accepted_by")?,
                    accepted_at: parse_opt_ts(row.get("accepted_at")?)?,
                })
            })
            .ctx(self)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self)
    }

    // ---- State -------------------------------------------------------------------------------

    /// The organization as it was at a complete run.
    pub fn state_at(&self, run_id: i64) -> Result<OrgState> {
        self.read_state(run_id, None)
    }

    /// What `privilege_escalation` compares with: complete run `previous` (its organization and
    /// time) holding only the earlier versions of the members who are administrators in run
    /// `now` and of the memberships that are `workspace_admin` in `now`, the only ones the rule
    /// looks up. Its invites, workspaces and keys are left empty. The join starts from the
    /// administrators at `now` (`CROSS JOIN` keeps SQLite to that order) and looks each one's
    /// earlier version up by primary key, so the tens of thousands of ordinary members and
    /// memberships are neither looked up nor turned into values.
    pub fn escalation_baseline(&self, previous: i64, now: i64) -> Result<OrgState> {
        self.read_state(previous, Some(now))
    }

    /// An id that splits the API keys about in half, or `None` when there are too few (`count`)
    /// to be worth two readers or no middle is found. Any id would do for correctness (the
    /// halves are `id < middle` and `id >= middle`); the middle of the lowest and highest ids
    /// costs two lookups, where counting to the median walks half the keys (80 ms at 250 000).
    fn key_split(&self, count: u64) -> Option<String> {
        const SPLIT_FROM: u64 = 20_000;
        if count < SPLIT_FROM {
            return None;
        }
        let (low, high): (Option<String>, Option<String>) = self
            .conn
            .query_row("SELECT min(id), max(id) FROM api_keys", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .ok()?;
        middle_between(&low?, &high?)
    }

    /// Run `run_id` whole, or (`baseline_for`: `Some(now)`) as [`Store::escalation_baseline`].
    fn read_state(&self, run_id: i64, baseline_for: Option<i64>) -> Result<OrgState> {
        let whole = baseline_for.is_none();
        let run = self.run(run_id)?.ok_or_else(|| StoreError::Other {
            path: self.path_text(),
            message: format!("no run {run_id}"),
        })?;
        if run.status != RunStatus::Complete {
            return Err(StoreError::Other {
                path: self.path_text(),
                message: format!(
                    "run {run_id} is {}, not complete; only complete snapshots can be read",
                    run.status.as_str()
                ),
            });
        }
        // Each list is collected into a vector of its final size, counted when it was written.
        let capacity = run.counts.unwrap_or_default();
        let at = "valid_from <= ?1 AND (valid_to IS NULL OR valid_to > ?1)";
        // The keys, the longest list (about two thirds of the values read), are read on
        // read-only connections of their own in other threads while this one reads the rest:
        // in two halves by id when there are many, so that the three parts are of a size and two
        // cores share them evenly. Not for an in-memory preview (its rows are not in the file),
        // nor when the file cannot be opened again (then the keys are read here after the rest).
        // The versions of a complete run do not change, so the connections agree on them.
        let keys_sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE {at}");
        let halves: Vec<(String, Option<String>, bool)> = match whole && !self.scratch {
            false => Vec::new(),
            true => match self.key_split(capacity.api_keys) {
                Some(middle) => vec![
                    (
                        format!("{keys_sql} AND id < ?2"),
                        Some(middle.clone()),
                        true,
                    ),
                    (format!("{keys_sql} AND id >= ?2"), Some(middle), false),
                ],
                None => vec![(keys_sql.clone(), None, true)],
            },
        };
        // `None`: the keys are read here (a preview, the baseline, or a connection refused).
        let readers: Option<Vec<KeyReader>> = match halves.is_empty() {
            true => None,
            false => halves
                .into_iter()
                .map(|(sql, middle, lower)| {
                    let conn = connect(&self.path, true).ok()?;
                    Some(KeyReader {
                        conn,
                        sql,
                        middle,
                        lower,
                    })
                })
                .collect(),
        };
        let path = self.path_text();
        let (members, invites, workspaces, workspace_members, api_keys) = std::thread::scope(
            |scope| -> Result<_> {
                let keys: Option<Vec<_>> = readers.map(|readers| {
                    readers
                        .into_iter()
                        .map(|reader| {
                            let path = &path;
                            scope.spawn(move || reader.read(path, run_id, capacity.api_keys))
                        })
                        .collect()
                });
                let rest = (|| -> Result<_> {
                    let members = match baseline_for {
                        None => self.query(
                            capacity.members,
                            &format!(
                                "SELECT id, email, name, role, added_at FROM members WHERE {at}"
                            ),
                            [run_id],
                            member_from_row,
                        )?,
                        Some(now) => {
                            let [a, b, c] = OrgRole::ADMINS.map(|role| role.as_str().to_owned());
                            self.query(
                                0,
                                "SELECT p.id, p.email, p.name, p.role, p.added_at FROM members c \
                             CROSS JOIN members p ON p.id = c.id \
                             WHERE c.role IN (?3, ?4, ?5) \
                             AND c.valid_from <= ?2 AND (c.valid_to IS NULL OR c.valid_to > ?2) \
                             AND p.valid_from <= ?1 AND (p.valid_to IS NULL OR p.valid_to > ?1)",
                                params![run_id, now, a, b, c],
                                member_from_row,
                            )?
                        }
                    };
                    let invites = if !whole {
                        Vec::new()
                    } else {
                        self.query(
                    capacity.invites,
                    &format!("SELECT id, email, role, status, invited_at, expires_at, accepted_at FROM invites WHERE {at}"),
                    [run_id],
                    |row| {
                        Ok(Invite {
                            id: row.get(0)?,
                            email: row.get(1)?,
                            role: text_at(row, 2)?.into(),
                            status: text_at(row, 3)?.into(),
                            invited_at: ts_at(row, 4)?,
                            expires_at: ts_at(row, 5)?,
                            accepted_at: opt_ts_at(row, 6)?,
                        })
                    },
                )?
                    };
                    let workspaces = if !whole {
                        Vec::new()
                    } else {
                        self.query(
                    capacity.workspaces,
                    &format!("SELECT id, name, display_color, created_at, archived_at FROM workspaces WHERE {at}"),
                    [run_id],
                    |row| {
                        Ok(Workspace {
                            id: row.get(0)?,
                            name: row.get(1)?,
                            display_color: row.get(2)?,
                            created_at: ts_at(row, 3)?,
                            archived_at: opt_ts_at(row, 4)?,
                        })
                    },
                )?
                    };
                    let workspace_members = match baseline_for {
                    None => self.query(
                        capacity.workspace_members,
                        &format!("SELECT workspace_id, user_id, workspace_role FROM workspace_members WHERE {at} ORDER BY workspace_id, user_id"),
                        [run_id],
                        membership_from_row,
                    )?,
                    Some(now) => self.query(
                        0,
                        "SELECT p.workspace_id, p.user_id, p.workspace_role FROM workspace_members c \
                         CROSS JOIN workspace_members p \
                           ON p.workspace_id = c.workspace_id AND p.user_id = c.user_id \
                         WHERE c.workspace_role = ?3 \
                         AND c.valid_from <= ?2 AND (c.valid_to IS NULL OR c.valid_to > ?2) \
                         AND p.valid_from <= ?1 AND (p.valid_to IS NULL OR p.valid_to > ?1) \
                         ORDER BY c.workspace_id, c.user_id",
                        params![run_id, now, WorkspaceRole::WorkspaceAdmin.as_str()],
                        membership_from_row,
                    )?,
                };
                    // In time order, then by id (ids are unique within one snapshot), sorted
                    // here while the keys are still being read. Sorted in Rust rather than by
                    // SQLite's sorter: the stored timestamps have one fixed-width UTC format, so
                    // this is the order of their text, and it is several times cheaper. The
                    // values are large: sorted by index, then each moved once.
                    let (mut members, mut invites, mut workspaces) = (members, invites, workspaces);
                    use crate::order::sort_large_by;
                    sort_large_by(&mut members, |a, b| {
                        (a.added_at, &a.id).cmp(&(b.added_at, &b.id))
                    });
                    sort_large_by(&mut invites, |a, b| {
                        (a.invited_at, &a.id).cmp(&(b.invited_at, &b.id))
                    });
                    sort_large_by(&mut workspaces, |a, b| {
                        (a.created_at, &a.id).cmp(&(b.created_at, &b.id))
                    });
                    Ok((members, invites, workspaces, workspace_members))
                })();
                let api_keys = match keys {
                    Some(threads) => {
                        // Each part comes sorted, the first with room for all: the others are
                        // merged into it, each key moving once.
                        let mut all: Option<Vec<ApiKey>> = None;
                        for thread in threads {
                            let part = thread.join().unwrap_or_else(|_| {
                                Err(StoreError::Other {
                                    path: path.clone(),
                                    message:
                                        "reading the API keys failed (the reading thread panicked)"
                                            .to_owned(),
                                })
                            })?;
                            all = Some(match all {
                                None => part,
                                Some(all) => crate::order::merge_sorted_by(all, part, key_order),
                            });
                        }
                        all.unwrap_or_default()
                    }
                    None if whole => {
                        let mut keys =
                            self.query(capacity.api_keys, &keys_sql, [run_id], key_from_row)?;
                        crate::order::sort_large_by(&mut keys, key_order);
                        keys
                    }
                    None => Vec::new(),
                };
                let (members, invites, workspaces, workspace_members) = rest?;
                Ok((members, invites, workspaces, workspace_members, api_keys))
            },
        )?;
        Ok(OrgState {
            run_id,
            taken_at: run.finished_at.unwrap_or(run.started_at),
            organization: Organization {
                id: run.org_id.unwrap_or_default(),
                name: run.org_name.unwrap_or_default(),
            },
            members,
            invites,
            workspaces,
            workspace_members,
            api_keys,
        })
    }

    /// The rows of `sql` with `params`, each made a value by `map`, in a vector of `capacity`.
    fn query<T>(
        &self,
        capacity: u64,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        query_rows(&self.conn, self, capacity, sql, params, map)
    }

    // ---- Retention ---------------------------------------------------------------------------

    /// Drops runs older than `keep_days` (always keeping the newest complete one) and every
    /// version no kept snapshot can see, and the directory reads no kept snapshot's audit and no
    /// person's history needs (see `directories::prune_directories`), then returns freed pages to the file system in small
    /// steps (`incremental_vacuum`), never with a full VACUUM pause.
    pub fn prune(&mut self, keep_days: u32, now: DateTime<Utc>) -> Result<PruneStats> {
        self.require_writer()?;
        let cutoff = ts(&(now - chrono::Duration::days(i64::from(keep_days))));
        let path = self.path_text();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&path)?;
        let newest_complete: Option<i64> = tx
            .query_row(
                "SELECT max(id) FROM runs WHERE status = 'complete'",
                [],
                |r| r.get(0),
            )
            .ctx(&path)?;
        let keep_from: Option<i64> = tx
            .query_row(
                "SELECT min(id) FROM runs WHERE started_at >= ?1 OR id = ?2",
                params![cutoff, newest_complete.unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .ctx(&path)?;
        // The directory reads an audit of the oldest kept snapshot could use start at the one
        // current at the cutoff, or earlier if that snapshot is older.
        let oldest_kept: Option<String> = match keep_from {
            Some(id) => tx
                .query_row("SELECT started_at FROM runs WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .ctx(&path)?,
            None => None,
        };
        let horizon = oldest_kept.map_or(cutoff.clone(), |t| t.min(cutoff.clone()));
        let (directory_reads, directory_versions) =
            directories::prune_directories(&tx, &horizon).ctx(&path)?;
        let Some(keep_from) = keep_from else {
            tx.commit().ctx(&path)?;
            return Ok(PruneStats {
                directory_reads,
                directory_versions,
                ..PruneStats::default()
            });
        };
        let runs = tx
            .execute("DELETE FROM runs WHERE id < ?1", [keep_from])
            .ctx(&path)? as u64;
        let mut versions = 0;
        for table in [
            "members",
            "invites",
            "workspaces",
            "workspace_members",
            "api_keys",
        ] {
            // A version that ended at or before the oldest kept run is visible in no kept snapshot.
            versions += tx
                .execute(
                    &format!("DELETE FROM {table} WHERE valid_to IS NOT NULL AND valid_to <= ?1"),
                    [keep_from],
                )
                .ctx(&path)? as u64;
        }
        tx.commit().ctx(&path)?;
        self.conn
            .execute_batch("PRAGMA incremental_vacuum(2000);")
            .ctx(self)?;
        Ok(PruneStats {
            runs,
            versions,
            directory_reads,
            directory_versions,
            usage_days: 0,
        })
    }

    /// Checkpoints the WAL into the main file (used before measuring or backing up the file).
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .ctx(self)
    }

    /// Commits `tx` without checkpointing the WAL on this thread: call
    /// [`Store::checkpoint_apart`] right after, whatever the commit's outcome. For the
    /// transactions that write tens of megabytes (an audit of a large organization), whose
    /// commit would otherwise copy all of them into the database file before the job could go
    /// on. Durability is unchanged: the commit is the same commit (`synchronous = NORMAL`),
    /// only the copy into the main file moves.
    pub(super) fn commit_without_checkpoint(
        tx: rusqlite::Transaction<'_>,
        path: &String,
    ) -> Result<()> {
        tx.execute_batch("PRAGMA wal_autocheckpoint = 0")
            .ctx(path)?;
        tx.commit().ctx(path)
    }

    /// After [`Store::commit_without_checkpoint`]: turns this connection's automatic
    /// checkpoint back on and, when the commit went through, checkpoints the WAL (`PASSIVE`)
    /// on a connection of its own in another thread. The WAL stays bounded as before: the next
    /// commit here checkpoints if the background one could not, and closing the last
    /// connection checkpoints too. The thread is joined before the next such checkpoint and
    /// when the store is dropped: a one-shot command (`orgwarden audit`) waits for it as it
    /// closes, after its job, rather than exit in the middle of it and leave the WAL full. An
    /// in-memory preview has no WAL to checkpoint.
    pub(super) fn checkpoint_apart(&mut self, committed: Result<()>, path: &String) -> Result<()> {
        let restored = self
            .conn
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}"
            ))
            .ctx(path);
        committed?;
        restored?;
        if self.scratch {
            return Ok(());
        }
        if let Some(previous) = self.checkpointing.take() {
            let _ = previous.join();
        }
        let file = self.path.clone();
        let spawned = std::thread::Builder::new()
            .name("orgwarden-checkpoint".to_owned())
            .spawn(move || {
                use rusqlite::OpenFlags;
                // Never creates the file: one removed meanwhile has nothing to checkpoint.
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let checkpointed = Connection::open_with_flags(&file, flags).and_then(|conn| {
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                });
                if let Err(error) = checkpointed {
                    tracing::debug!("background WAL checkpoint not done: {error}");
                }
            });
        match spawned {
            Ok(thread) => self.checkpointing = Some(thread),
            // No thread: checkpoint here, as the commit would have.
            Err(_) => self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .ctx(path)?,
        }
        Ok(())
    }

    /// `PRAGMA integrity_check`, `"ok"` when the file is sound.
    pub fn integrity_check(&self) -> Result<String> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .ctx(self)
    }

    /// The schema as `sqlite_master` rows, whitespace-normalised, for migration tests.
    pub fn schema_dump(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name")
            .ctx(self)?;
        let rows = stmt
            .query_map([], |row| {
                let sql: String = row.get(2)?;
                Ok(format!(
                    "{} {} {}",
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    sql.split_whitespace().collect::<Vec<_>>().join(" ")
                ))
            })
            .ctx(self)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self)
    }
}

/// Opens a connection with the pragmas every connection needs (set in code, not in migrations).
fn open_connection(path: &Path) -> Result<Connection> {
    let conn = connect(path, false)?;
    configure(&conn, path)?;
    Ok(conn)
}

/// The error of a connection to `path`: corruption is named as such.
fn conn_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| {
        if is_corruption(&source) {
            StoreError::Corrupt {
                path: path.display().to_string(),
                detail: source.to_string(),
            }
        } else {
            StoreError::Sqlite {
                path: path.display().to_string(),
                source,
            }
        }
    }
}

/// Opens a connection; `read_only` ones write nothing (no pragma that changes the file), and
/// fall back to an immutable open where SQLite cannot create its shared-memory file (a
/// read-only directory, where no writer can be changing the database either).
fn connect(path: &Path, read_only: bool) -> Result<Connection> {
    use rusqlite::OpenFlags;
    let err = conn_err(path);
    if !read_only {
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(&err)?;
        return Ok(conn);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let usable = |conn: Connection| -> rusqlite::Result<Connection> {
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;")?;
        Ok(conn)
    };
    match Connection::open_with_flags(path, flags).and_then(usable) {
        Ok(conn) => Ok(conn),
        Err(error)
            if matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
            ) =>
        {
            let uri = format!("file:{}?immutable=1", uri_path(path));
            Connection::open_with_flags(uri, flags)
                .and_then(usable)
                .map_err(&err)
        }
        Err(error) => Err(err(error)),
    }
}

/// `path` escaped for a `file:` URI.
fn uri_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'%' | b'?' | b'#' => out.push_str(&format!("%{byte:02X}")),
            _ => out.push(byte as char),
        }
    }
    out
}

/// `PRAGMA quick_check`: the first problem it names, as [`StoreError::Corrupt`].
fn quick_check(conn: &Connection, path: &Path) -> Result<()> {
    let err = conn_err(path);
    let mut stmt = conn.prepare("PRAGMA quick_check(3)").map_err(&err)?;
    let rows: Vec<String> = stmt
        .query_map([], |row| row.get(0))
        .map_err(&err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(&err)?;
    if rows.len() == 1 && rows[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        path: path.display().to_string(),
        detail: format!("quick_check: {}", rows.join("; ")),
    })
}

/// SQLite's default `wal_autocheckpoint`: a commit that leaves the WAL longer than this many
/// pages checkpoints it.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 1000;

/// The pragmas every writing connection needs (set in code, not in migrations).
fn configure(conn: &Connection, path: &Path) -> Result<()> {
    let err = conn_err(path);
    // auto_vacuum only takes effect on a new, empty file, so it comes first; it lets retention
    // give pages back with `incremental_vacuum` instead of a full VACUUM pause. Only on an empty
    // file: on an existing one the pragma waits for the write lock, which would block a reader
    // (up to the busy timeout) while the daemon writes a snapshot.
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |row| row.get(0))
        .map_err(&err)?;
    if pages == 0 {
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")
            .map_err(&err)?;
    }
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA journal_size_limit = 67108864;",
    )
    .map_err(&err)?;
    Ok(())
}

#[cfg(test)]
mod tests;
