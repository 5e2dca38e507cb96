//! Snapshots: reading the whole organization through the Admin API into the store, atomically.
//!
//! `run_snapshot` fetches every list concurrently (at most `max_in_flight` requests at once) and
//! streams the pages to a writer thread that stages them inside one SQLite transaction. The run
//! becomes `complete` only when every list was read to its end; any failure rolls the transaction
//! back and records the run as `failed` with the error text.
//!
//! This module also defines [`OrgState`], the organization at one snapshot, and [`diff`], the pure
//! comparison of two states that `orgwarden diff`, the audit and the report share.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};

use crate::admin_api::models::{ApiKey, Invite, Organization, User, Workspace, WorkspaceMember};
use crate::admin_api::{AdminClient, ApiError, Pager};
use crate::store::{Counts, Store};

/// The organization as one complete snapshot saw it.
#[derive(Debug, Clone, Serialize)]
pub struct OrgState {
    pub run_id: i64,
    pub taken_at: DateTime<Utc>,
    pub organization: Organization,
    pub members: Vec<User>,
    pub invites: Vec<Invite>,
    pub workspaces: Vec<Workspace>,
    pub workspace_members: Vec<WorkspaceMember>,
    pub api_keys: Vec<ApiKey>,
}

impl OrgState {
    pub fn counts(&self) -> Counts {
        Counts {
            members: self.members.len() as u64,
            invites: self.invites.len() as u64,
            workspaces: self.workspaces.len() as u64,
            workspace_members: self.workspace_members.len() as u64,
            api_keys: self.api_keys.len() as u64,
        }
    }
}

// ---- Diff -----------------------------------------------------------------------------------------

/// One difference between two snapshots. Serialised with the API's field names plus `kind`,
/// `change` and, for a changed field, `field`, `before` and `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `member`, `invite`, `api_key`, `workspace` or `workspace_member`.
    pub kind: &'static str,
    /// `joined`, `left`, `role_changed`, `created`, `accepted`, `expired`, `deleted`,
    /// `status_changed`, `renamed`, `vanished`, `archived`, `added`, `removed`, `changed`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl Change {
    fn new(kind: &'static str, change: &'static str) -> Change {
        Change {
            kind,
            change,
            id: None,
            email: None,
            name: None,
            workspace_id: None,
            user_id: None,
            field: None,
            before: None,
            after: None,
        }
    }

    fn field(mut self, field: &'static str, before: impl ToString, after: impl ToString) -> Change {
        self.field = Some(field);
        self.before = Some(before.to_string());
        self.after = Some(after.to_string());
        self
    }

    /// The human subject: an email, a name, or `user in workspace`.
    pub fn subject(&self) -> String {
        if let Some(email) = &self.email {
            return email.clone();
        }
        if let Some(name) = &self.name {
            return name.clone();
        }
        match (&self.user_id, &self.workspace_id) {
            (Some(user), Some(workspace)) => format!("{user} in {workspace}"),
            _ => self.id.clone().unwrap_or_default(),
        }
    }
}

fn index<'a, T, K: Ord>(items: &'a [T], key: impl Fn(&'a T) -> K) -> BTreeMap<K, &'a T> {
    items.iter().map(|item| (key(item), item)).collect()
}

fn opt_text<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// Everything that changed from `before` to `after`, in a stable order (kind, then id).
pub fn diff(before: &OrgState, after: &OrgState) -> Vec<Change> {
    let mut changes = Vec::new();

    // Members.
    let (old, new) = (
        index(&before.members, |u| u.id.as_str()),
        index(&after.members, |u| u.id.as_str()),
    );
    let member = |u: &User, change| Change {
        id: Some(u.id.clone()),
        email: Some(u.email.clone()),
        ..Change::new("member", change)
    };
    for (id, u) in &new {
        match old.get(id) {
            None => changes.push(member(u, "joined")),
            Some(o) => {
                if o.role != u.role {
                    changes.push(member(u, "role_changed").field("role", &o.role, &u.role));
                }
                if o.email != u.email {
                    changes.push(member(u, "changed").field("email", &o.email, &u.email));
                }
                if o.name != u.name {
                    changes.push(member(u, "changed").field("name", &o.name, &u.name));
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            changes.push(member(o, "left"));
        }
    }

    // Invites.
    let (old, new) = (
        index(&before.invites, |i| i.id.as_str()),
        index(&after.invites, |i| i.id.as_str()),
    );
    let invite = |i: &Invite, change| Change {
        id: Some(i.id.clone()),
        email: Some(i.email.clone()),
        ..Change::new("invite", change)
    };
    for (id, i) in &new {
        match old.get(id) {
            None => changes.push(invite(i, "created")),
            Some(o) => {
                if o.status != i.status {
                    let change = match i.status.as_str() {
                        "accepted" => "accepted",
                        "expired" => "expired",
                        "deleted" => "deleted",
                        _ => "status_changed",
                    };
                    changes.push(invite(i, change).field("status", &o.status, &i.status));
                }
                if o.role != i.role {
                    changes.push(invite(i, "role_changed").field("role", &o.role, &i.role));
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            // Deleted invites are not listed any more: vanishing is how deletion shows.
            changes.push(invite(o, "deleted"));
        }
    }

    // Workspaces.
    let (old, new) = (
        index(&before.workspaces, |w| w.id.as_str()),
        index(&after.workspaces, |w| w.id.as_str()),
    );
    let workspace = |w: &Workspace, change| Change {
        id: Some(w.id.clone()),
        name: Some(w.name.clone()),
        ..Change::new("workspace", change)
    };
    for (id, w) in &new {
        match old.get(id) {
            None => changes.push(workspace(w, "created")),
            Some(o) => {
                if o.archived_at.is_none() && w.archived_at.is_some() {
                    changes.push(workspace(w, "archived").field(
                        "archived_at",
                        "",
                        opt_text(&w.archived_at.map(|t| crate::store::ts(&t))),
                    ));
                }
                if o.name != w.name {
                    changes.push(workspace(w, "renamed").field("name", &o.name, &w.name));
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            changes.push(workspace(o, "vanished"));
        }
    }

    // Workspace memberships.
    let key = |m: &WorkspaceMember| (m.workspace_id.clone(), m.user_id.clone());
    let (old, new) = (
        index(&before.workspace_members, key),
        index(&after.workspace_members, key),
    );
    let membership = |m: &WorkspaceMember, change| Change {
        workspace_id: Some(m.workspace_id.clone()),
        user_id: Some(m.user_id.clone()),
        ..Change::new("workspace_member", change)
    };
    for (k, m) in &new {
        match old.get(k) {
            None => {
                changes.push(membership(m, "added").field("workspace_role", "", &m.workspace_role))
            }
            Some(o) if o.workspace_role != m.workspace_role => {
                changes.push(membership(m, "role_changed").field(
                    "workspace_role",
                    &o.workspace_role,
                    &m.workspace_role,
                ))
            }
            Some(_) => {}
        }
    }
    for (k, o) in &old {
        if !new.contains_key(k) {
            changes.push(membership(o, "removed"));
        }
    }

    // API keys.
    let (old, new) = (
        index(&before.api_keys, |k| k.id.as_str()),
        index(&after.api_keys, |k| k.id.as_str()),
    );
    let api_key = |k: &ApiKey, change| Change {
        id: Some(k.id.clone()),
        name: Some(k.name.clone()),
        ..Change::new("api_key", change)
    };
    for (id, k) in &new {
        match old.get(id) {
            None => changes.push(api_key(k, "created")),
            Some(o) => {
                if o.status != k.status {
                    changes
                        .push(api_key(k, "status_changed").field("status", &o.status, &k.status));
                }
                if o.name != k.name {
                    changes.push(api_key(k, "renamed").field("name", &o.name, &k.name));
                }
                if o.workspace_id != k.workspace_id {
                    changes.push(api_key(k, "changed").field(
                        "workspace_id",
                        opt_text(&o.workspace_id),
                        opt_text(&k.workspace_id),
                    ));
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            changes.push(api_key(o, "vanished"));
        }
    }
    changes
}

// ---- Fetching -------------------------------------------------------------------------------------

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

/// Reads one list page by page, each request under a permit, sending pages on.
async fn drain<T, F>(
    mut pager: Pager<T>,
    permits: &Semaphore,
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
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = permits.acquire().await.expect("semaphore is never closed");
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
        if let Some(sink) = sink {
            sink.send(wrap(page))
                .await
                .map_err(|_| anyhow::anyhow!("the database writer stopped"))?;
        }
    }
    let items = progress.items;
    progress.done();
    Ok(items)
}

/// Fetches every list, sending pages to `sink` (or discarding them, to measure the fetch alone).
async fn fetch_all(
    client: &AdminClient,
    options: FetchOptions,
    sink: Option<mpsc::Sender<Batch>>,
) -> anyhow::Result<Counts> {
    let permits = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
    let progress = Progress::new(options.progress);
    let organization = async {
        let organization = {
            let _permit = permits.acquire().await.expect("semaphore is never closed");
            client
                .organization()
                .await
                .context("reading the organization")?
        };
        if let Some(sink) = &sink {
            sink.send(Batch::Organization(organization))
                .await
                .map_err(|_| anyhow::anyhow!("the database writer stopped"))?;
        }
        anyhow::Ok(())
    };
    let members = drain(
        client.users(),
        &permits,
        &sink,
        progress.resource("members"),
        Batch::Members,
    );
    let invites = drain(
        client.invites(),
        &permits,
        &sink,
        progress.resource("invites"),
        Batch::Invites,
    );
    let api_keys = drain(
        client.api_keys(),
        &permits,
        &sink,
        progress.resource("api keys"),
        Batch::ApiKeys,
    );
    let workspaces_and_members = async {
        // Workspace ids are needed before their member lists can be read.
        let mut workspaces: Vec<Workspace> = Vec::new();
        let mut pager = client.workspaces(true);
        let mut ws_progress = progress.resource("workspaces");
        loop {
            let page = {
                let _permit = permits.acquire().await.expect("semaphore is never closed");
                pager.next_page().await.context("reading workspaces")?
            };
            let Some(page) = page else { break };
            ws_progress.page(page.len());
            workspaces.extend(page.iter().cloned());
            if let Some(sink) = &sink {
                sink.send(Batch::Workspaces(page))
                    .await
                    .map_err(|_| anyhow::anyhow!("the database writer stopped"))?;
            }
        }
        ws_progress.done();
        let mut member_progress = progress.resource("workspace members");
        let pending: Vec<_> = workspaces
            .iter()
            .map(|w| {
                let permits = &permits;
                let sink = &sink;
                let id = w.id.clone();
                async move {
                    let mut pager = client.workspace_members(&id);
                    let mut pages = Vec::new();
                    loop {
                        let page = {
                            let _permit =
                                permits.acquire().await.expect("semaphore is never closed");
                            pager
                                .next_page()
                                .await
                                .with_context(|| format!("reading the members of workspace {id}"))?
                        };
                        let Some(page) = page else { break };
                        pages.push(page.len());
                        if let Some(sink) = sink {
                            sink.send(Batch::WorkspaceMembers(page))
                                .await
                                .map_err(|_| anyhow::anyhow!("the database writer stopped"))?;
                        }
                    }
                    anyhow::Ok(pages)
                }
            })
            .collect();
        let mut stream =
            futures::stream::iter(pending).buffer_unordered(options.max_in_flight.max(1));
        let mut total = 0;
        while let Some(pages) = stream.try_next().await? {
            for n in pages {
                member_progress.page(n);
                total += n as u64;
            }
        }
        member_progress.done();
        anyhow::Ok((workspaces.len() as u64, total))
    };
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

/// Helper for callers: member ids mapped to members.
pub fn members_by_id(state: &OrgState) -> HashMap<&str, &User> {
    state.members.iter().map(|m| (m.id.as_str(), m)).collect()
}
