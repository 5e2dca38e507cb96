//! Snapshots: reading the whole organization through the Admin API into the store, atomically.
//!
//! `run_snapshot` fetches every list concurrently (at most `max_in_flight` requests at once) and
//! streams the pages to a writer thread that stages them inside one SQLite transaction. The run
//! becomes `complete` only when every list was read to its end; any failure rolls the transaction
//! back and records the run as `failed` with the error text.

use std::collections::VecDeque;
use std::io::IsTerminal;
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
    let members = drain(
        client.users(),
        &slots,
        &sink,
        progress.resource("members"),
        Batch::Members,
    );
    let invites = drain(
        client.invites(),
        &slots,
        &sink,
        progress.resource("invites"),
        Batch::Invites,
    );
    let api_keys = drain(
        client.api_keys(),
        &slots,
        &sink,
        progress.resource("api keys"),
        Batch::ApiKeys,
    );
    let workspaces_and_members =
        fetch_workspaces_and_members(client, &slots, &sink, &progress, options.max_in_flight);
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
