//! The writer lock: an exclusive `flock` on `<db>.lock`, held for the life of a writing store.
//!
//! The kernel releases it when the process dies, so a killed orgwarden never leaves a stale lock.
//! The file's content (pid, what it is doing, since when) lets a refused process name the holder.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Result, StoreError};

/// Proof that this process is the only writer of a database.
#[derive(Debug)]
pub struct WriterLock {
    /// Kept open: closing the file releases the lock.
    file: File,
    path: PathBuf,
}

impl WriterLock {
    /// Takes the lock or fails at once, naming the current holder.
    pub fn acquire(
        db_path: &Path,
        holder: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<WriterLock> {
        let path = lock_path(db_path);
        let io_err = |e: std::io::Error| StoreError::Other {
            path: db_path.display().to_string(),
            message: format!("cannot open lock file {}: {e}", path.display()),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder may be rewriting it; an empty or partial name is still useful.
                let _ = file.read_to_string(&mut text);
                let text = text.trim();
                return Err(StoreError::Locked {
                    path: db_path.display().to_string(),
                    holder: if text.is_empty() {
                        "holder unknown".to_owned()
                    } else {
                        text.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let description = match since {
            Some(since) => format!(
                "pid {} running `{holder}` since {}",
                std::process::id(),
                since.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            None => format!("pid {} running `{holder}`", std::process::id()),
        };
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(description.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(io_err)?;
        Ok(WriterLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who holds the writer lock of `db_path` right now (the lock file's description), or `None`
    /// when nobody does. It probes with a shared lock, released at once: a writer starting in
    /// that instant is refused as if another writer held the database.
    pub fn holder(db_path: &Path) -> Option<String> {
        match WriterLock::probe(db_path) {
            LockProbe::Held(text) if text.is_empty() => Some("holder unknown".to_owned()),
            LockProbe::Held(text) => Some(text),
            LockProbe::Free | LockProbe::Unknown => None,
        }
    }
}

/// Whether some process holds a database's writer lock, as a reader can tell without taking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockProbe {
    /// No writer: a run still `running` was left by a process that is gone.
    Free,
    /// A writer holds it; the text names it.
    Held(String),
    /// The lock file cannot be opened (no permission): assume a writer may be alive.
    Unknown,
}

/// The path of a database's lock file.
pub(crate) fn lock_path(db_path: &Path) -> PathBuf {
    let mut path = db_path.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

impl WriterLock {
    /// Looks whether a writer holds the lock of `db_path`, without taking it for longer than the
    /// look (a shared lock on a read-only handle, released at once) and without creating files.
    pub fn probe(db_path: &Path) -> LockProbe {
        let path = lock_path(db_path);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return LockProbe::Free,
            Err(_) => return LockProbe::Unknown,
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                LockProbe::Free
            }
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                LockProbe::Held(text.trim().to_owned())
            }
            Err(TryLockError::Error(_)) => LockProbe::Unknown,
        }
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Clearing the name is cosmetic; the lock itself goes with the file handle.
        let _ = self.file.set_len(0);
    }
}
