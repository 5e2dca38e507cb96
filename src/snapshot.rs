//! Snapshots: reading the whole organization through the Admin API into the store, atomically.
//!
//! `run_snapshot` fetches every list concurrently (at most `max_in_flight` requests at once) and
//! streams the pages to a writer thread that stages them inside one SQLite transaction. The run
//! becomes `complete` only when every list was read to its end; any failure rolls the transaction
//! back and records the run as `failed` with the error text.

use std::collections::{HashSet, VecDeque};
use std::io::IsTerminal;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::admin_api::{AdminClient, ApiError, Pager};
use crate::org::Counts;
use crate::org::{ApiKey, Invite, Organization, User, Workspace, WorkspaceMember};
use crate::store::Store;

pub use crate::org::{diff, members_by_id, Change, OrgState};

// ---- Fetching -------------------------------------------------------------------------------------

/// Which requests go first when every slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    /// The next page of an organization-wide list (members, invites, API keys, workspaces).
    List = 0,
    /// A workspace's member list: many short lists.
    Workspace = 1,
}

/// The requests a snapshot has in flight, at most `max_in_flight`, handed out by priority (in
/// order of asking within one priority).
///
/// A list is read one page after another (each cursor comes from the page before), so the
/// longest list sets the snapshot's length: at 20k members and 50k keys the key list alone is
/// 50 of the 177 round trips. Queued behind the many short workspace member lists in one FIFO, its
/// every page would wait for a slot; served first, it never waits and the short lists fill the
/// slots it leaves.
struct Slots {
    state: std::sync::Mutex<SlotsState>,
}

struct SlotsState {
    free: usize,
    /// The waiters of each priority, by `Priority as usize`: a freed slot is sent to the first.
    waiting: [VecDeque<oneshot::Sender<()>>; 2],
}

/// One request's slot, given back when dropped.
struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// A waiter's claim: if it is dropped after a slot was sent to it but before it took the slot
/// (its future cancelled), the slot is given back rather than lost.
struct Claim<'a> {
    slots: &'a Slots,
    receiver: Option<oneshot::Receiver<()>>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(mut receiver) = self.receiver.take() {
            receiver.close();
            if receiver.try_recv().is_ok() {
                self.slots.release();
            }
        }
    }
}

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            state: std::sync::Mutex::new(SlotsState {
                free: n.max(1),
                waiting: [VecDeque::new(), VecDeque::new()],
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotsState> {
        // Held for a few instructions, never across an await; a poisoned lock still holds
        // valid counts.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Waits for a slot: at once if one is free and nobody of this or a higher priority waits.
    async fn acquire(&self, priority: Priority) -> Slot<'_> {
        loop {
            let receiver = {
                let mut state = self.lock();
                let ahead = state.waiting[..=priority as usize]
                    .iter()
                    .any(|queue| !queue.is_empty());
                if state.free > 0 && !ahead {
                    state.free -= 1;
                    return Slot(self);
                }
                let (sender, receiver) = oneshot::channel();
                state.waiting[priority as usize].push_back(sender);
                receiver
            };
            let mut claim = Claim {
                slots: self,
                receiver: Some(receiver),
            };
            let granted = match claim.receiver.as_mut() {
                Some(receiver) => receiver.await.is_ok(),
                None => false,
            };
            claim.receiver = None;
            if granted {
                return Slot(self);
            }
            // A sender is dropped unsent only with the queue, which lives as long as `self`:
            // not reached, but asking again is the safe answer.
        }
    }

    /// Sends a freed slot to the first live waiter by priority, or keeps it free.
    fn release(&self) {
        let mut state = self.lock();
        for queue in &mut state.waiting {
            while let Some(sender) = queue.pop_front() {
                if sender.send(()).is_ok() {
                    return;
                }
            }
        }
        state.free += 1;
    }
}

/// One page on its way to the writer.
enum Batch {
    Organization(Organization),
    Members(Vec<User>),
    Invites(Vec<Invite>),
    Workspaces(Vec<Workspace>),
    WorkspaceMembers(Vec<WorkspaceMember>),
    ApiKeys(Vec<ApiKey>),
    /// An organization-wide list was read to its end: the writer writes what it has so far to
    /// the WAL while the rest is fetched.
    ListRead,
}

/// What a finished snapshot recorded.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotSummary {
    pub run_id: i64,
    pub counts: Counts,
    pub requests: u64,
    pub retries: u64,
    pub elapsed: Duration,
}

/// How a snapshot fetches.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    /// Requests in flight at once across every list.
    pub max_in_flight: usize,
    /// Live progress bars (only when stderr is a terminal).
    pub progress: bool,
}

/// Per-resource progress: bars on a terminal, one log line per resource otherwise.
struct Progress {
    bars: Option<indicatif::MultiProgress>,
}

struct ResourceProgress {
    name: String,
    bar: Option<indicatif::ProgressBar>,
    items: u64,
    pages: u64,
    started: Instant,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        let bars = (enabled && std::io::stderr().is_terminal()).then(indicatif::MultiProgress::new);
        Progress { bars }
    }

    fn resource(&self, name: &str) -> ResourceProgress {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(indicatif::ProgressBar::new_spinner());
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix:>18} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        ResourceProgress {
            name: name.to_owned(),
            bar,
            items: 0,
            pages: 0,
            started: Instant::now(),
        }
    }
}

impl ResourceProgress {
    fn page(&mut self, n_items: usize) {
        self.items += n_items as u64;
        self.pages += 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} read, {} pages", self.items, self.pages));
        }
    }

    fn done(self) {
        match &self.bar {
            Some(bar) => {
                bar.finish_with_message(format!("{} read, {} pages ✓", self.items, self.pages))
            }
            None => tracing::info!(
                resource = %self.name,
                items = self.items,
                pages = self.pages,
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "read"
            ),
        }
    }
}

/// Reads one list page by page, each request under a slot, sending pages on.
async fn drain<T, F>(
    mut pager: Pager<T>,
    slots: &Slots,
    sink: &Option<mpsc::Sender<Batch>>,
    mut progress: ResourceProgress,
    wrap: F,
) -> anyhow::Result<u64>
where
    T: serde::de::DeserializeOwned,
    F: Fn(Vec<T>) -> Batch,
{
    loop {
        let page = {
            let _slot = slots.acquire(Priority::List).await;
            pager.next_page().await
        };
        let page = match page {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(error) => {
                return Err(anyhow::Error::new(error).context(format!("reading {}", progress.name)))
            }
        };
        progress.page(page.len());
        forward(sink, wrap(page)).await?;
    }
    let items = progress.items;
    progress.done();
    Ok(items)
}

/// [`drain`], then tells the writer the list is read (see `Batch::ListRead`).
async fn drain_list<T, F>(
    pager: Pager<T>,
    slots: &Slots,
    sink: &Option<mpsc::Sender<Batch>>,
    progress: ResourceProgress,
    wrap: F,
) -> anyhow::Result<u64>
where
    T: serde::de::DeserializeOwned,
    F: Fn(Vec<T>) -> Batch,
{
    let n = drain(pager, slots, sink, progress, wrap).await?;
    forward(sink, Batch::ListRead).await?;
    Ok(n)
}

/// Sends one batch to the writer, if there is one.
async fn forward(sink: &Option<mpsc::Sender<Batch>>, batch: Batch) -> anyhow::Result<()> {
    if let Some(sink) = sink {
        sink.send(batch)
            .await
            .map_err(|_| anyhow::anyhow!("the database writer stopped"))?;
    }
    Ok(())
}

/// Fetches every list, sending pages to `sink` (or discarding them, to measure the fetch alone).
async fn fetch_all(
    client: &AdminClient,
    options: FetchOptions,
    sink: Option<mpsc::Sender<Batch>>,
) -> anyhow::Result<Counts> {
    let slots = Slots::new(options.max_in_flight);
    let progress = Progress::new(options.progress);
    let organization = async {
        let organization = {
            let _slot = slots.acquire(Priority::List).await;
            client
                .organization()
                .await
                .context("reading the organization")?
        };
        forward(&sink, Batch::Organization(organization)).await
    };
    // After each organization-wide list, the writer is told it is read (see `Batch::ListRead`).
    let members = drain_list(
        client.users(),
        &slots,
        &sink,
        progress.resource("members"),
        Batch::Members,
    );
    let invites = drain_list(
        client.invites(),
        &slots,
        &sink,
        progress.resource("invites"),
        Batch::Invites,
    );
    let (probe_sender, probe_workspace) = oneshot::channel();
    let api_keys = async {
        let n = fetch_api_keys(
            client,
            &slots,
            &sink,
            progress.resource("api keys"),
            probe_workspace,
            options.max_in_flight,
        )
        .await?;
        forward(&sink, Batch::ListRead).await?;
        anyhow::Ok(n)
    };
    let workspaces_and_members = fetch_workspaces_and_members(
        client,
        &slots,
        &sink,
        &progress,
        options.max_in_flight,
        probe_sender,
    );
    let ((), members, invites, api_keys, (workspaces, workspace_members)) = tokio::try_join!(
        organization,
        members,
        invites,
        api_keys,
        workspaces_and_members
    )?;
    Ok(Counts {
        members,
        invites,
        workspaces,
        workspace_members,
        api_keys,
    })
}

/// The workspaces, then every workspace's members (their ids are needed first), up to
/// `max_in_flight` member lists at a time: the counts of both.
async fn fetch_workspaces_and_members(
    client: &AdminClient,
    slots: &Slots,
    sink: &Option<mpsc::Sender<Batch>>,
    progress: &Progress,
    max_in_flight: usize,
    probe: oneshot::Sender<Option<String>>,
) -> anyhow::Result<(u64, u64)> {
    let mut workspaces: Vec<Workspace> = Vec::new();
    let mut pager = client.workspaces(true);
    let mut ws_progress = progress.resource("workspaces");
    loop {
        let page = {
            let _slot = slots.acquire(Priority::List).await;
            pager.next_page().await.context("reading workspaces")?
        };
        let Some(page) = page else { break };
        ws_progress.page(page.len());
        workspaces.extend(page.iter().cloned());
        forward(sink, Batch::Workspaces(page)).await?;
    }
    ws_progress.done();
    // The key list is split at keys of the oldest workspace still open (keys are made in it
    // over the longest time), else of the oldest one. Nobody listening is fine.
    let oldest = |open: bool| {
        workspaces
            .iter()
            .filter(|w| !open || w.archived_at.is_none())
            .min_by_key(|w| w.created_at)
            .map(|w| w.id.clone())
    };
    let _ = probe.send(oldest(true).or_else(|| oldest(false)));
    let mut member_progress = progress.resource("workspace members");
    let pending: Vec<_> = workspaces
        .iter()
        .map(|w| workspace_members(client, slots, sink, w.id.clone()))
        .collect();
    let mut stream = futures::stream::iter(pending).buffer_unordered(max_in_flight.max(1));
    let mut total = 0;
    while let Some(pages) = stream.try_next().await? {
        for n in pages {
            member_progress.page(n);
            total += n as u64;
        }
    }
    member_progress.done();
    Ok((workspaces.len() as u64, total))
}

/// One workspace's member list, page by page to the writer: the size of each page.
async fn workspace_members(
    client: &AdminClient,
    slots: &Slots,
    sink: &Option<mpsc::Sender<Batch>>,
    id: String,
) -> anyhow::Result<Vec<usize>> {
    let mut pager = client.workspace_members(&id);
    let mut pages = Vec::new();
    loop {
        let page = {
            let _slot = slots.acquire(Priority::Workspace).await;
            pager
                .next_page()
                .await
                .with_context(|| format!("reading the members of workspace {id}"))?
        };
        let Some(page) = page else { break };
        pages.push(page.len());
        forward(sink, Batch::WorkspaceMembers(page)).await?;
    }
    Ok(pages)
}

// ---- The API key list in segments -----------------------------------------------------------------

/// How the key list's segments end, shared by the tasks reading them.
///
/// The key list is the longest (50 of a 177-request snapshot at 50k keys) and each page's cursor
/// comes from the page before, so read as one chain it sets the snapshot's length. A first
/// segment reads from the start at once. Once its first page shows there is more, a probe reads
/// one page of one workspace's keys (`workspace_id` filter): keys spread over the list. A few of
/// them, at even spacing, become **pivots**, and a segment starts after each pivot
/// (`after_id = pivot`). Every segment ends at the first open pivot it meets, that pivot
/// included, or at the list's end.
///
/// Whatever the list's order (undocumented) and wherever the pivots fall in it, the segments
/// then cover the list exactly once: the pivots cut it into stretches, the stretch before the
/// first pivot belongs to the first segment, and the stretch after each pivot to that pivot's
/// segment. Pivots only decide how evenly the work is shared. The segments share it behind a
/// mutex, never held across an await (a poisoned lock still holds valid sets).
#[derive(Default)]
struct KeySplit {
    /// Pivots whose segment was started: a segment ends at the first of these it meets.
    open: HashSet<String>,
    /// Pivots a segment ended at.
    met: HashSet<String>,
    /// Until the pivots are chosen, every key the first segment has read (a pivot it has
    /// already passed gets no segment: its stretch is the first segment's to read).
    first_read: Option<HashSet<String>>,
    /// The first segment reached the list's end before the pivots were chosen.
    first_done: bool,
}

impl KeySplit {
    /// A page a segment has read: where it ends (the index after the first open pivot, which is
    /// recorded as met), or `None` when the segment goes on. `first` is the first segment's.
    fn end_of(&mut self, page: &[ApiKey], first: bool, last_page: bool) -> Option<usize> {
        if first {
            if let Some(read) = &mut self.first_read {
                read.extend(page.iter().map(|k| k.id.clone()));
                self.first_done = last_page;
                return None;
            }
        }
        let i = page.iter().position(|k| self.open.contains(&k.id))?;
        self.met.insert(page[i].id.clone());
        Some(i + 1)
    }

    /// A pivot whose cursor was refused (the key went away after the probe): no segment can
    /// end at it any more, so the one that would have reads on through its stretch. Unless one
    /// already ended there, which would leave that stretch unread: then the read fails (the
    /// snapshot is all or nothing; the next one reads the list again).
    fn gone(&mut self, pivot: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.met.contains(pivot),
            "reading api keys: the list changed during the read (key {pivot} went away); the \
             next snapshot reads it again"
        );
        self.open.remove(pivot);
        Ok(())
    }

    /// Opens the pivots the first segment has not passed (none once it is done), each once:
    /// those to read after.
    fn open_pivots(&mut self, pivots: Vec<String>) -> Vec<String> {
        let read = self.first_read.take().unwrap_or_default();
        if self.first_done {
            return Vec::new();
        }
        // A pivot given twice is opened once: two segments after one key would read it twice.
        pivots
            .into_iter()
            .filter(|p| !read.contains(p) && self.open.insert(p.clone()))
            .collect()
    }
}

/// Up to `n` keys at even spacing over `keys` (none of them twice), in their order.
fn pivots_of(keys: &[ApiKey], n: usize) -> Vec<String> {
    let mut pivots: Vec<String> = Vec::new();
    for i in 1..=n {
        let Some(key) = keys.get(keys.len() * i / (n + 1)) else {
            break;
        };
        if !pivots.contains(&key.id) {
            pivots.push(key.id.clone());
        }
    }
    pivots
}

/// Every API key, in up to `segments` segments read at once (see [`KeySplit`]); the probe's
/// workspace comes from the workspace list. The count of keys.
async fn fetch_api_keys(
    client: &AdminClient,
    slots: &Slots,
    sink: &Option<mpsc::Sender<Batch>>,
    progress: ResourceProgress,
    probe_workspace: oneshot::Receiver<Option<String>>,
    segments: usize,
) -> anyhow::Result<u64> {
    if segments <= 1 {
        return drain(client.api_keys(), slots, sink, progress, Batch::ApiKeys).await;
    }
    let choose = async {
        // No workspace, no split.
        let Ok(Some(workspace)) = probe_workspace.await else {
            return Ok(Vec::new());
        };
        let keys = {
            let _slot = slots.acquire(Priority::List).await;
            client.api_keys_of_workspace_first_page(&workspace).await
        };
        // A failed probe costs only the split: the first segment reads on alone.
        Ok(match keys {
            Ok(keys) => pivots_of(&keys, segments - 1),
            Err(error) => {
                tracing::debug!(%error, "probing a workspace's keys failed; reading the key list in one segment");
                Vec::new()
            }
        })
    };
    read_keys_split(client, slots, sink, progress, choose).await
}

/// The key list read from its start at once and, if its first page is not the last, also after
/// each pivot `choose` gives (see [`KeySplit`]). The count of keys.
async fn read_keys_split(
    client: &AdminClient,
    slots: &Slots,
    sink: &Option<mpsc::Sender<Batch>>,
    progress: ResourceProgress,
    choose: impl std::future::Future<Output = anyhow::Result<Vec<String>>>,
) -> anyhow::Result<u64> {
    let split = std::sync::Mutex::new(KeySplit {
        first_read: Some(HashSet::new()),
        ..KeySplit::default()
    });
    let progress = std::sync::Mutex::new(progress);
    let (more_sender, more) = oneshot::channel();
    let first = segment(
        client,
        slots,
        sink,
        &split,
        &progress,
        None,
        Some(more_sender),
    );
    let rest = async {
        // Only a list of more than one page is split.
        let pivots = match more.await {
            Ok(true) => choose.await?,
            _ => Vec::new(),
        };
        let pivots = split
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open_pivots(pivots);
        futures::future::try_join_all(
            pivots
                .into_iter()
                .map(|p| segment(client, slots, sink, &split, &progress, Some(p), None)),
        )
        .await
        .map(drop)
    };
    tokio::try_join!(first, rest)?;
    let progress = progress
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let items = progress.items;
    progress.done();
    Ok(items)
}

/// One segment of the key list: from the start (`after` none) or after a pivot, to the first
/// open pivot or the end. The first segment says on `more` whether its first page was not the
/// last.
async fn segment(
    client: &AdminClient,
    slots: &Slots,
    sink: &Option<mpsc::Sender<Batch>>,
    split: &std::sync::Mutex<KeySplit>,
    progress: &std::sync::Mutex<ResourceProgress>,
    after: Option<String>,
    mut more: Option<oneshot::Sender<bool>>,
) -> anyhow::Result<()> {
    let mut pager = match &after {
        None => client.api_keys(),
        Some(pivot) => client.api_keys_after(pivot),
    };
    let mut first_page = true;
    loop {
        let page = {
            let _slot = slots.acquire(Priority::List).await;
            pager.next_page().await
        };
        let mut page = match page {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(error) if first_page && after.is_some() && error.status() == Some(400) => {
                // The pivot's cursor was refused: the key went away after the probe.
                return split
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .gone(after.as_deref().unwrap_or_default());
            }
            Err(error) => {
                return Err(anyhow::Error::new(error).context("reading api keys"));
            }
        };
        first_page = false;
        let end = split.lock().unwrap_or_else(PoisonError::into_inner).end_of(
            &page,
            after.is_none(),
            pager.is_done(),
        );
        if let Some(more) = more.take() {
            let _ = more.send(!pager.is_done());
        }
        if let Some(end) = end {
            page.truncate(end);
        }
        progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .page(page.len());
        forward(sink, Batch::ApiKeys(page)).await?;
        if end.is_some() {
            break;
        }
    }
    Ok(())
}

/// Fetches every page without storing anything: the bound a snapshot is measured against.
pub async fn fetch_only(client: &AdminClient, max_in_flight: usize) -> anyhow::Result<Counts> {
    fetch_all(
        client,
        FetchOptions {
            max_in_flight,
            progress: false,
        },
        None,
    )
    .await
}

/// Takes one snapshot into `store` (which must be open for writing).
pub async fn run_snapshot(
    client: &AdminClient,
    store: &Store,
    options: FetchOptions,
    clock: &dyn crate::clock::Clock,
) -> anyhow::Result<SnapshotSummary> {
    let started = Instant::now();
    let stats_before = client.stats();
    let run_id = store.begin_run(clock.now())?;
    let result = async {
        let mut writer = store.snapshot_writer(run_id)?;
        let (sender, mut receiver) = mpsc::channel::<Batch>(4);
        // SQLite is blocking: the writer lives on its own thread and gets pages over a channel.
        let writer_thread = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            while let Some(batch) = receiver.blocking_recv() {
                match batch {
                    Batch::Organization(org) => writer.organization(org),
                    Batch::Members(page) => writer.members(&page)?,
                    Batch::Invites(page) => writer.invites(&page)?,
                    Batch::Workspaces(page) => writer.workspaces(&page)?,
                    Batch::WorkspaceMembers(page) => writer.workspace_members(&page)?,
                    Batch::ApiKeys(page) => writer.api_keys(&page)?,
                    Batch::ListRead => writer.flush_cache(),
                }
            }
            Ok(writer)
        });
        let fetched = fetch_all(client, options, Some(sender)).await;
        // The sender is gone now (moved into fetch_all and dropped), so the writer drains and
        // returns. On a fetch error the writer is dropped unfinished, which rolls back.
        let writer = writer_thread
            .await
            .context("the database writer panicked")?;
        fetched?;
        let writer = writer?;
        let stats = client.stats();
        let requests = stats.requests - stats_before.requests;
        let retries = stats.retries - stats_before.retries;
        let now = clock.now();
        let counts = tokio::task::spawn_blocking(move || writer.finish(requests, retries, now))
            .await
            .context("the database writer panicked")??;
        anyhow::Ok((counts, requests, retries))
    }
    .await;
    match result {
        Ok((counts, requests, retries)) => Ok(SnapshotSummary {
            run_id,
            counts,
            requests,
            retries,
            elapsed: started.elapsed(),
        }),
        Err(error) => {
            let stats = client.stats();
            let text = format!("{error:#}");
            store.fail_run(
                run_id,
                &text,
                stats.requests - stats_before.requests,
                stats.retries - stats_before.retries,
                clock.now(),
            )?;
            Err(error.context(format!("snapshot run {run_id} failed")))
        }
    }
}

/// True when `error` (anywhere in its chain) is an authentication failure.
pub fn is_auth_error(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<ApiError>().and_then(ApiError::status) == Some(401))
}

#[cfg(test)]
mod tests {
    use super::{Priority, Slots};
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;

    #[tokio::test]
    async fn a_freed_slot_goes_to_a_list_page_before_a_workspace_and_in_order_within_one() {
        let slots = Slots::new(1);
        let held = slots.acquire(Priority::Workspace).await;
        let mut workspace = pin!(slots.acquire(Priority::Workspace));
        let mut first_list = pin!(slots.acquire(Priority::List));
        let mut second_list = pin!(slots.acquire(Priority::List));
        for waiter in [
            workspace.as_mut().poll(&mut noop()),
            first_list.as_mut().poll(&mut noop()),
            second_list.as_mut().poll(&mut noop()),
        ] {
            assert!(waiter.is_pending(), "the only slot is held");
        }
        drop(held);
        assert!(workspace.as_mut().poll(&mut noop()).is_pending());
        assert!(second_list.as_mut().poll(&mut noop()).is_pending());
        let Poll::Ready(slot) = first_list.as_mut().poll(&mut noop()) else {
            panic!("the first list waiter gets the freed slot");
        };
        drop(slot);
        assert!(workspace.as_mut().poll(&mut noop()).is_pending());
        let Poll::Ready(slot) = second_list.as_mut().poll(&mut noop()) else {
            panic!("then the second");
        };
        drop(slot);
        assert!(
            workspace.as_mut().poll(&mut noop()).is_ready(),
            "then the workspace"
        );
    }

    #[tokio::test]
    async fn a_cancelled_waiter_loses_no_slot() {
        let slots = Slots::new(2);
        let a = slots.acquire(Priority::List).await;
        let b = slots.acquire(Priority::List).await;
        {
            // Dropped before anything was freed: skipped by the next release.
            let mut waiting = Box::pin(slots.acquire(Priority::Workspace));
            assert!(waiting.as_mut().poll(&mut noop()).is_pending());
        }
        {
            // Granted while waiting, dropped before it took the slot.
            let mut granted = Box::pin(slots.acquire(Priority::List));
            assert!(granted.as_mut().poll(&mut noop()).is_pending());
            drop(a);
        }
        drop(b);
        let _one = slots.acquire(Priority::Workspace).await;
        let _two = slots.acquire(Priority::Workspace).await;
        assert_eq!(slots.lock().free, 0);
        assert!(slots.lock().waiting.iter().all(|queue| queue.is_empty()));
    }

    fn noop() -> std::task::Context<'static> {
        std::task::Context::from_waker(std::task::Waker::noop())
    }
}

#[cfg(test)]
mod split_tests {
    //! The key list in segments: a model of the segments' reads over a list (every order of
    //! their steps, pivots anywhere, gone or refused), then the real reads against the simulator.

    use std::collections::HashSet;

    use proptest::prelude::*;
    use secrecy::SecretString;
    use tokio::sync::mpsc;

    use super::{read_keys_split, Batch, KeySplit, Progress, Slots};
    use crate::admin_api::{AdminClient, ClientOptions};
    use crate::org::ApiKey;

    fn key(id: &str) -> ApiKey {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": "k", "workspace_id": null,
            "created_at": "2026-01-01T00:00:00Z", "status": "active"
        }))
        .unwrap()
    }

    /// One segment of the model: where it reads next, or how its start went.
    struct Model {
        pivot: Option<String>,
        next: Option<usize>,
        started: bool,
        done: bool,
    }

    /// Reads `list` in segments with `pivots` (some not in the list: gone; those in `refused`
    /// are in it but their cursor is refused), the pivots chosen after the first segment's
    /// `decide_after` pages, every step taken in the order `schedule` picks. The ids read, or
    /// the error.
    fn run_model(
        list: &[String],
        page: usize,
        pivots: Vec<String>,
        refused: &HashSet<String>,
        decide_after: usize,
        schedule: &[usize],
    ) -> Result<Vec<String>, String> {
        let mut split = KeySplit {
            first_read: Some(HashSet::new()),
            ..KeySplit::default()
        };
        let keys: Vec<ApiKey> = list.iter().map(|id| key(id)).collect();
        let mut segments = vec![Model {
            pivot: None,
            next: Some(0),
            started: true,
            done: false,
        }];
        let mut read = Vec::new();
        let mut first_pages = 0;
        let mut decided = false;
        let mut steps = schedule.iter().cycle();
        loop {
            if !decided && (first_pages >= decide_after || segments[0].done) {
                decided = true;
                for p in split.open_pivots(pivots.clone()) {
                    segments.push(Model {
                        pivot: Some(p),
                        next: None,
                        started: false,
                        done: false,
                    });
                }
            }
            let live: Vec<usize> = (0..segments.len()).filter(|&i| !segments[i].done).collect();
            if live.is_empty() && decided {
                return Ok(read);
            }
            let i = live[steps.next().copied().unwrap_or(0) % live.len().max(1)];
            let s = &mut segments[i];
            if !s.started {
                s.started = true;
                let pivot = s.pivot.clone().unwrap();
                match list.iter().position(|id| *id == pivot) {
                    Some(at) if !refused.contains(&pivot) => s.next = Some(at + 1),
                    _ => {
                        split.gone(&pivot).map_err(|e| e.to_string())?;
                        s.done = true;
                        continue;
                    }
                }
            }
            let from = s.next.unwrap();
            let to = (from + page).min(keys.len());
            let last = to == keys.len();
            let chunk = &keys[from..to];
            let end = split.end_of(chunk, s.pivot.is_none(), last);
            let taken = end.unwrap_or(chunk.len());
            read.extend(chunk[..taken].iter().map(|k| k.id.clone()));
            s.next = Some(to);
            s.done = end.is_some() || last;
            if s.pivot.is_none() {
                first_pages += 1;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn segments_read_every_key_once_whatever_the_pivots_and_the_order(
            n in 1usize..60,
            page in 1usize..9,
            picks in proptest::collection::vec(0usize..80, 0..5),
            refused_picks in proptest::collection::vec(0usize..80, 0..2),
            decide_after in 1usize..4,
            schedule in proptest::collection::vec(0usize..7, 1..40),
        ) {
            let list: Vec<String> = (0..n).map(|i| format!("k{i:03}")).collect();
            // A pick past the list's end is a pivot that is gone.
            let pivots: Vec<String> = picks.iter().map(|&p| format!("k{p:03}")).collect();
            let refused: HashSet<String> = refused_picks
                .iter()
                .map(|&p| format!("k{p:03}"))
                .filter(|p| pivots.contains(p) && list.contains(p))
                .collect();
            match run_model(&list, page, pivots, &refused, decide_after, &schedule) {
                Ok(mut read) => {
                    read.sort();
                    prop_assert_eq!(read, list);
                }
                // Only a refused pivot that a segment had already ended at fails the read.
                Err(error) => {
                    prop_assert!(!refused.is_empty(), "{}", error);
                    prop_assert!(error.contains("the list changed during the read"), "{}", error);
                }
            }
        }
    }

    #[test]
    fn pivots_are_evenly_spaced_and_never_repeated() {
        let keys: Vec<ApiKey> = (0..100).map(|i| key(&format!("k{i}"))).collect();
        assert_eq!(pivots_of_ids(&keys, 3), ["k25", "k50", "k75"]);
        assert_eq!(pivots_of_ids(&keys[..2], 3), ["k0", "k1"]);
        assert!(pivots_of_ids(&[], 3).is_empty());
        assert_eq!(pivots_of_ids(&keys[..1], 3), ["k0"]);
    }

    fn pivots_of_ids(keys: &[ApiKey], n: usize) -> Vec<String> {
        super::pivots_of(keys, n)
    }

    /// The simulator's key ids, in its list's order.
    fn key_ids(sim: &orgwarden_sim::SimHandle) -> Vec<String> {
        sim.snapshot_state()
            .api_keys()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The segments' reads against the simulator, with the pivots given: every key once.
    async fn read_with_pivots(sim: &orgwarden_sim::SimHandle, page: u32, pivots: Vec<String>) {
        let mut options = ClientOptions::new(sim.base_url().parse().unwrap());
        options.page_size = page;
        options.max_retries = 0;
        let client =
            AdminClient::new(options, SecretString::from(sim.admin_key().to_owned())).unwrap();
        let truth: HashSet<String> = key_ids(sim).into_iter().collect();
        let slots = Slots::new(4);
        let (sender, mut receiver) = mpsc::channel(1024);
        let sink = Some(sender);
        let progress = Progress::new(false);
        let count = read_keys_split(
            &client,
            &slots,
            &sink,
            progress.resource("api keys"),
            std::future::ready(Ok(pivots.clone())),
        )
        .await
        .unwrap();
        drop(sink);
        let mut read = Vec::new();
        while let Some(batch) = receiver.recv().await {
            if let Batch::ApiKeys(page) = batch {
                read.extend(page.into_iter().map(|k| k.id));
            }
        }
        assert_eq!(count as usize, read.len(), "pivots {pivots:?}");
        let unique: HashSet<String> = read.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            read.len(),
            "a key read twice, pivots {pivots:?}"
        );
        assert_eq!(unique, truth, "pivots {pivots:?}");
    }

    #[tokio::test]
    async fn segments_over_http_read_every_key_once_even_past_a_refused_cursor() {
        let sim = orgwarden_sim::SimHandle::start_local(orgwarden_sim::SimOptions::default())
            .await
            .unwrap();
        let ids = key_ids(&sim);
        assert!(ids.len() >= 40, "the default seed has {} keys", ids.len());
        let at = |f: usize| ids[ids.len() * f / 10].clone();
        for pivots in [
            vec![at(3), at(6), at(8)],
            // Out of the list's order, side by side, the last key, one in the first page.
            vec![at(8), at(3), at(6)],
            vec![at(5), ids[ids.len() * 5 / 10 + 1].clone()],
            vec![ids[ids.len() - 1].clone(), ids[1].clone()],
            // A pivot that is not in the list: its cursor is refused (400) and the segment
            // before it reads on.
            vec![at(3), "apikey_01gonegonegonegonegonegone".to_owned(), at(7)],
            Vec::new(),
        ] {
            read_with_pivots(&sim, 5, pivots).await;
        }
    }
}
