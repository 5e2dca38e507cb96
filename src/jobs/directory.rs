//! The directory jobs: reading the `[[directories]]` sources, recording their reads, and the
//! views of them the audit evaluates.

use super::*;

/// What one read of a directory source found.
#[derive(Debug, Clone, Serialize)]
pub struct DirectoryReadSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub active: usize,
    pub disabled: usize,
    pub deleted: usize,
    /// People assigned to the Claude application, when the source reads assignments.
    pub assigned: Option<usize>,
    pub duration_ms: u64,
    /// Why the read failed; the counts are then zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub started_at: DateTime<Utc>,
    #[serde(skip)]
    pub finished_at: DateTime<Utc>,
}

/// Reads `sources` concurrently; each result comes with its summary. Writes nothing.
pub async fn read_directories(
    sources: &[&crate::config::DirectoryConfig],
    clock: &crate::clock::SharedClock,
) -> Vec<(
    DirectoryReadSummary,
    Result<crate::org::DirectoryListing, crate::directory::DirectoryError>,
)> {
    use crate::org::DirectoryStatus;
    let reads = sources.iter().map(|source| async move {
        let started_at = clock.now();
        let timer = std::time::Instant::now();
        let result = crate::directory::read(source, started_at).await;
        let duration_ms = u64::try_from(timer.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut summary = DirectoryReadSummary {
            name: source.name.clone(),
            kind: crate::directory::kind(&source.source),
            active: 0,
            disabled: 0,
            deleted: 0,
            assigned: None,
            duration_ms,
            error: None,
            started_at,
            finished_at: clock.now(),
        };
        match &result {
            Ok(listing) => {
                for person in &listing.people {
                    match person.status {
                        DirectoryStatus::Active => summary.active += 1,
                        DirectoryStatus::Disabled(_) => summary.disabled += 1,
                        DirectoryStatus::Deleted => summary.deleted += 1,
                    }
                }
                summary.assigned = listing.assigned.as_ref().map(Vec::len);
            }
            Err(error) => summary.error = Some(error.message.clone()),
        }
        (summary, result)
    });
    futures::future::join_all(reads).await
}

/// Reads `sources` concurrently and records each read in the store (complete with its people,
/// or failed with its message).
pub async fn directory_job(
    ctx: &mut JobContext<'_>,
    sources: &[&crate::config::DirectoryConfig],
) -> anyhow::Result<Vec<DirectoryReadSummary>> {
    let results = read_directories(sources, &ctx.clock).await;
    let mut out = Vec::with_capacity(results.len());
    for read in results {
        out.push(record_directory_read(ctx.store, read)?);
    }
    Ok(out)
}

/// Logs one read of [`read_directories`] and records it in the store (complete with its people,
/// or failed with its message).
pub fn record_directory_read(
    store: &mut Store,
    (summary, result): (
        DirectoryReadSummary,
        Result<crate::org::DirectoryListing, crate::directory::DirectoryError>,
    ),
) -> anyhow::Result<DirectoryReadSummary> {
    let stored = result.as_ref().map_err(|error| error.message.as_str());
    match &result {
        Err(error) => {
            tracing::error!(source = %summary.name, "directory read failed: {}", error.message)
        }
        Ok(_) => tracing::info!(
            source = %summary.name,
            kind = summary.kind,
            active = summary.active,
            disabled = summary.disabled,
            deleted = summary.deleted,
            elapsed_ms = summary.duration_ms,
            "directory read"
        ),
    }
    store.record_directory_read(
        &summary.name,
        summary.started_at,
        summary.finished_at,
        stored,
    )?;
    Ok(summary)
}

/// The `[[directories]]` source called `name`, or an error naming the configured ones.
pub fn directory_source<'c>(
    config: &'c Config,
    name: &str,
) -> anyhow::Result<&'c crate::config::DirectoryConfig> {
    config
        .directories
        .iter()
        .find(|source| source.name == name)
        .with_context(|| {
            let names: Vec<&str> = config.directories.iter().map(|s| s.name.as_str()).collect();
            format!(
                "no [[directories]] source is named {name:?} (configured: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })
}

/// The job of one scheduled source (the daemon runs it at each occurrence of the source's
/// `schedule`; `directory read NAME` runs it once): reads the source and records the read. A
/// failed read is recorded too (the audit then leaves the source's rules `not_evaluated`) and
/// comes back in the summary's `error`.
pub async fn directory_read_job(
    ctx: &mut JobContext<'_>,
    name: &str,
) -> anyhow::Result<DirectoryReadSummary> {
    let source = directory_source(ctx.config, name)?;
    let read = read_directories(&[source], &ctx.clock)
        .await
        .pop()
        .context("no read")?;
    record_directory_read(ctx.store, read)
}

/// How long a scheduled source's read stays usable for the audit: twice its schedule's interval
/// (the gap between the two occurrences that follow the read), so one missed or slow run is
/// tolerated and two are not. `None` when the schedule never fires again.
pub fn directory_max_age(
    schedule: &str,
    timezone: chrono_tz::Tz,
    read_at: DateTime<Utc>,
) -> Option<chrono::Duration> {
    crate::schedule::period(schedule, timezone, read_at).map(|period| period * 2)
}

/// The directory sources as the rules see them at `at`: each source by its latest read at or
/// before `at`. A failed read leaves the source's rules `not_evaluated`; so does, for a source
/// with its own `schedule`, a read older than [`directory_max_age`] (a source read with each
/// cycle was read just before the snapshot).
pub fn directory_views(
    config: &Config,
    store: &Store,
    at: DateTime<Utc>,
) -> anyhow::Result<Vec<crate::policy::DirectoryView>> {
    let mut views = Vec::with_capacity(config.directories.len());
    for source in &config.directories {
        let record = store.directory_read_at(&source.name, at, false)?;
        let max_age = match (&source.schedule, &record) {
            (Some(schedule), Some(record)) => {
                directory_max_age(schedule, config.schedule.timezone, record.finished_at)
            }
            _ => None,
        };
        let read = match record {
            None => Err("not read yet".to_owned()),
            Some(record) if record.status != "complete" => Err(format!(
                "the read at {} failed: {}",
                record.finished_at.format("%Y-%m-%d %H:%M UTC"),
                record.error.as_deref().unwrap_or("unknown error")
            )),
            Some(record) if max_age.is_some_and(|max| at - record.finished_at > max) => {
                Err(format!(
                    "the latest read, at {}, is older than twice the source's schedule interval \
                     ({} min)",
                    record.finished_at.format("%Y-%m-%d %H:%M UTC"),
                    max_age.map_or(0, |max| max.num_minutes())
                ))
            }
            Some(record) => {
                let (listing, seen_since) = store.directory_listing(&record)?;
                Ok(crate::policy::DirectoryRead {
                    listing,
                    read_at: record.finished_at,
                    seen_since,
                })
            }
        };
        views.push(crate::policy::DirectoryView {
            name: source.name.clone(),
            domains: source.domains.clone(),
            read,
        });
    }
    Ok(views)
}
