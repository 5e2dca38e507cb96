//! The event stream's sinks: `[events] path` (a JSON-lines file, rotated by size, or standard
//! output) written after each job, and the lines `orgwarden events` prints.
//!
//! **Invariant:** every event reaches the sink once. The last id written is remembered in the
//! database after the lines are fsync'd; a crash in between is caught by reading the id of the
//! file's last line, so the next flush neither repeats nor skips an event.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::{EventsConfig, EventsPath};
use crate::store::{EventRecord, Store};

/// How many events are read from the database at a time.
const BATCH: u32 = 1000;

/// One event as its JSON line (without the newline).
pub fn line(event: &EventRecord) -> String {
    event.to_json().to_string()
}

/// Appends the events not yet written to `[events] path`, if one is configured. A failure is
/// logged, never the job's failure.
pub fn after_job(config: &EventsConfig, store: &Store) {
    let Some(path) = &config.path else {
        return;
    };
    if let Err(error) = flush(path, config.max_bytes, store) {
        tracing::warn!("cannot write the events to {}: {error:#}", describe(path));
    }
}

fn describe(path: &EventsPath) -> String {
    match path {
        EventsPath::Stdout => "standard output".to_owned(),
        EventsPath::File(path) => path.display().to_string(),
    }
}

fn sink_name(path: &EventsPath) -> String {
    match path {
        EventsPath::Stdout => "-".to_owned(),
        EventsPath::File(path) => format!("file:{}", path.display()),
    }
}

/// Writes every event after the sink's position; returns how many were written.
pub fn flush(path: &EventsPath, max_bytes: u64, store: &Store) -> anyhow::Result<usize> {
    let sink = sink_name(path);
    let mut position = store.events_sink_position(&sink)?;
    if let EventsPath::File(file) = path {
        position = position.max(last_written_id(file)?);
    }
    let mut written = 0;
    loop {
        let events = store.events(Some(crate::store::EventsSince::Id(position)), BATCH)?;
        let Some(last) = events.last().map(|e| e.id) else {
            break;
        };
        let mut text = String::new();
        for event in &events {
            text.push_str(&line(event));
            text.push('\n');
        }
        match path {
            EventsPath::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            EventsPath::File(file) => append(file, text.as_bytes(), max_bytes)?,
        }
        store.set_events_sink_position(&sink, last)?;
        written += events.len();
        position = last;
    }
    Ok(written)
}

/// The rotated file's name: `<path>.1`.
pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Appends `bytes` (whole lines) to `path` and fsyncs it, first renaming a file that would grow
/// beyond `max_bytes` to `<path>.1`.
fn append(path: &Path, bytes: &[u8], max_bytes: u64) -> anyhow::Result<()> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > 0 && size + bytes.len() as u64 > max_bytes {
        std::fs::rename(path, rotated(path))
            .with_context(|| format!("cannot rotate {}", path.display()))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The new or renamed file's directory entry must survive a crash too.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// The id of the last complete line of `path` (or of `<path>.1` when `path` is empty or
/// missing), 0 if none. A line cut short by a crash is removed.
fn last_written_id(path: &Path) -> anyhow::Result<i64> {
    for candidate in [path.to_path_buf(), rotated(path)] {
        let Ok(mut file) = OpenOptions::new().read(true).write(true).open(&candidate) else {
            continue;
        };
        let size = file.metadata()?.len();
        if size == 0 {
            continue;
        }
        let start = size.saturating_sub(64 * 1024);
        file.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail)?;
        if tail.last() != Some(&b'\n') {
            // A partial last line: cut it off (its events are written again).
            let keep = tail
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|i| start + i as u64 + 1)
                .unwrap_or(0);
            file.set_len(keep)?;
            file.sync_all()?;
            tail.truncate((keep - start.min(keep)) as usize);
            if keep == 0 {
                continue;
            }
        }
        let text = String::from_utf8_lossy(&tail);
        if let Some(id) = text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v.get("id").and_then(serde_json::Value::as_i64))
        {
            return Ok(id);
        }
    }
    Ok(0)
}
