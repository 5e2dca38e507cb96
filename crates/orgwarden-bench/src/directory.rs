//! `orgwarden-bench directory`: reading a large directory through orgwarden's own source code
//! (`orgwarden::directory::read`, the function the audit cycle and the daemon's scheduled job
//! call) from the Okta, Google Directory API and Microsoft Graph simulators at their documented
//! rate limits and page sizes, against the bound those limits set; then what the directory rules
//! add to the benchmark audit.

use std::time::{Duration, Instant};

use anyhow::Context;
use orgwarden::config::{
    Config, DirectoryConfig, DirectorySource, EntraSettings, Environment, GoogleSettings, OktaAuth,
    OktaSettings,
};
use orgwarden::org::DirectoryListing;
use orgwarden_sim::idp::graph::{
    DEMO_GRAPH_CLIENT_ID, DEMO_GRAPH_CLIENT_SECRET, DEMO_TENANT_ID, GRAPH_CLAUDE_SP_ID,
};
use orgwarden_sim::idp::okta::{DEMO_OKTA_TOKEN, OKTA_CLAUDE_APP_ID};
use orgwarden_sim::{
    DirectoryEntry, DirectoryState, GraphOptions, GraphSim, OktaOptions, OktaSim, SeedSizes,
    SimHandle, SimOptions, DEMO_ADMIN_KEY, MAIN_DOMAIN,
};
use secrecy::SecretString;
use serde::Serialize;

/// Okta: `/api/v1/users` pages of at most 200, the app's users pages of at most 500, and the
/// simulator's documented default of 600 requests a minute for `/api/v1/`.
const OKTA_PAGE: usize = 200;
const OKTA_APP_PAGE: usize = 500;
const OKTA_PER_MINUTE: u32 = 600;
/// Microsoft Graph: `$top` at most 999; a large tenant's (over 500 users) application+tenant
/// limit is 8 000 resource units per 10 seconds and `GET users` costs 2, 1 with `$select`
/// ("Microsoft Graph service-specific throttling limits", identity and access): 800 requests a
/// second.
const GRAPH_TOP: usize = 999;
const GRAPH_PER_SECOND: u32 = 800;
/// Google Workspace: `users.list` pages of at most 500 (`maxResults`) and the Admin SDK's default
/// quota of 2 400 queries a minute per user ("Directory API: Limits and quotas"): 40 a second on
/// average, the whole minute's quota at once.
const GOOGLE_PAGE: usize = 500;
const GOOGLE_PER_MINUTE: u32 = 2_400;
/// Timed rounds of the Graph read and of its pages fetched alone (`--graph-rounds`).
pub(crate) const GRAPH_ROUNDS: usize = 3;

/// Which of the Graph rounds' two reads run (`--graph-side`): both, for the figures; one alone,
/// to profile it (e.g. under callgrind, the difference between a `read` and a `fetch` run is what
/// orgwarden's read adds to the same pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum GraphSide {
    Both,
    /// Only orgwarden's read.
    Read,
    /// Only the fetch-only read.
    Fetch,
}

/// What `directory` measures.
#[derive(Debug, Clone)]
pub(crate) struct DirectoryBench {
    pub(crate) people: usize,
    pub(crate) save_db: Option<std::path::PathBuf>,
    /// Only the Graph part (no Okta read, no audit).
    pub(crate) graph_only: bool,
    pub(crate) graph_rounds: usize,
    pub(crate) graph_side: GraphSide,
}

/// One source's read of the whole directory.
#[derive(Debug, Serialize)]
pub(crate) struct SourceRead {
    persons: usize,
    /// Pages the listing takes at the source's maximum page size (users, then the ones a plain
    /// list leaves out, then the app assignments).
    pages: usize,
    /// Requests the simulator answered during the read (a token request and any 429 included).
    requests: u64,
    seconds: f64,
    /// The documented rate limit, in requests per second.
    rate_limit_per_sec: f64,
    /// `pages / rate_limit_per_sec`: how long the pages take to arrive at that rate.
    bound_at_rate_limit_secs: f64,
    /// The same pages fetched alone from this simulator, as orgwarden asks for them (the same
    /// URLs, the three lists as chains side by side, each page's body read and its next link
    /// followed, nothing else parsed or kept), where measured: how long the pages take to arrive
    /// when the server, not the rate limit, is the slower.
    fetch_only_secs: Option<f64>,
    /// When the pages can arrive at the earliest: the larger of the two above.
    arrival_secs: f64,
    /// `seconds / arrival_secs`: at most 1 meets the target.
    ratio: f64,
    /// Graph: the rounds of orgwarden's read and the fetch-only read whose medians are `seconds`
    /// and `fetch_only_secs`, after a first read (`first_read_secs`) that paid for the
    /// simulator's one-time derivation of its directory and its token.
    #[serde(skip_serializing_if = "Option::is_none")]
    rounds: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_read_secs: Option<f64>,
    /// The process's CPU time (orgwarden and the simulator together) during each, medians.
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetch_only_cpu_secs: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    all_seconds: Vec<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    all_fetch_only_secs: Vec<f64>,
}

/// The audit of the benchmark organization without and with a directory source.
#[derive(Debug, Serialize)]
pub(crate) struct AuditWithDirectory {
    directory_persons: usize,
    /// Medians of the runs, each on its own copy of the same database.
    runs: usize,
    without_secs: f64,
    with_secs: f64,
    without_cpu_secs: Option<f64>,
    with_cpu_secs: Option<f64>,
    without_load_secs: f64,
    with_load_secs: f64,
    without_evaluate_secs: f64,
    with_evaluate_secs: f64,
    findings_without: usize,
    findings_with: usize,
    /// `with_secs - without_secs` (target ≤ 0.2 s).
    directory_rules_add_secs: f64,
    directory_rules_add_cpu_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct DirectoryFigures {
    #[serde(skip_serializing_if = "Option::is_none")]
    okta: Option<SourceRead>,
    #[serde(skip_serializing_if = "Option::is_none")]
    google: Option<SourceRead>,
    entra: SourceRead,
    #[serde(skip_serializing_if = "Option::is_none")]
    audit: Option<AuditWithDirectory>,
}

fn fixed_now() -> chrono::DateTime<chrono::Utc> {
    "2026-06-01T12:00:00Z".parse().expect("a valid time")
}

fn ceil_div(n: usize, d: usize) -> usize {
    n.div_ceil(d)
}

fn settings_okta(okta: &OktaSim) -> DirectoryConfig {
    DirectoryConfig {
        name: "okta".into(),
        domains: vec![MAIN_DOMAIN.into()],
        schedule: None,
        source: DirectorySource::Okta(OktaSettings {
            org_url: okta.base_url(),
            auth: OktaAuth::ApiToken(SecretString::from(DEMO_OKTA_TOKEN)),
            search: None,
            app_id: Some(OKTA_CLAUDE_APP_ID.into()),
        }),
    }
}

fn settings_entra(graph: &GraphSim) -> DirectoryConfig {
    DirectoryConfig {
        name: "entra".into(),
        domains: vec![MAIN_DOMAIN.into()],
        schedule: None,
        source: DirectorySource::Entra(EntraSettings {
            tenant_id: DEMO_TENANT_ID.into(),
            client_id: DEMO_GRAPH_CLIENT_ID.into(),
            client_secret: SecretString::from(DEMO_GRAPH_CLIENT_SECRET),
            graph_url: graph.base_url(),
            login_url: graph.base_url(),
            service_principal_id: Some(GRAPH_CLAUDE_SP_ID.into()),
        }),
    }
}

async fn timed_read(config: &DirectoryConfig) -> anyhow::Result<(DirectoryListing, f64)> {
    let started = Instant::now();
    let listing = orgwarden::directory::read(config, fixed_now())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((listing, started.elapsed().as_secs_f64()))
}

/// Seeds an organization whose directory has about `people` persons and reads it from the Okta,
/// Google and Graph simulators; then measures the audit of the benchmark organization with its
/// directory.
pub(crate) async fn bench_directory(bench: &DirectoryBench) -> anyhow::Result<DirectoryFigures> {
    let people = bench.people;
    // The directory is derived from the organization: about 1.06 persons per member (with the
    // invites, former members and directory-only people).
    let sizes = SeedSizes {
        members: people * 15 / 16,
        invites: people / 50,
        workspaces: 1,
        workspace_members: 0,
        keys: 10,
    };
    eprintln!("seeding an organization of {} members...", sizes.members);
    let sim = SimHandle::start_local(SimOptions {
        sizes,
        now: Some(fixed_now()),
        ..SimOptions::default()
    })
    .await?;
    let directory = sim.snapshot_state().directory();
    let persons = directory.len();
    let assigned = directory.iter().filter(|e| e.assigned).count();
    eprintln!("directory: {persons} persons, {assigned} assigned to the app");

    let (okta_read, google_read) = if bench.graph_only {
        (None, None)
    } else {
        (
            Some(bench_okta(&sim, &directory).await?),
            Some(bench_google(&sim, &directory).await?),
        )
    };
    let entra_read = bench_graph(&sim, &directory, bench).await?;
    sim.shutdown();
    let audit = if bench.graph_only {
        None
    } else {
        Some(audit_with_directory(bench.save_db.as_deref()).await?)
    };
    Ok(DirectoryFigures {
        okta: okta_read,
        google: google_read,
        entra: entra_read,
        audit,
    })
}

/// Orgwarden's read of the Okta simulator at its documented rate limit.
async fn bench_okta(sim: &SimHandle, directory: &[DirectoryEntry]) -> anyhow::Result<SourceRead> {
    let persons = directory.len();
    let assigned = directory.iter().filter(|e| e.assigned).count();
    let okta = OktaSim::start_local(
        sim,
        OktaOptions {
            rate_limit: OKTA_PER_MINUTE,
            rate_window: Duration::from_secs(60),
            ..OktaOptions::default()
        },
    )
    .await?;
    let gone = |e: &DirectoryEntry| {
        matches!(
            e.state,
            DirectoryState::Deprovisioned | DirectoryState::Deleted
        )
    };
    let n_gone = directory.iter().filter(|e| gone(e)).count();
    let okta_pages = ceil_div(persons - n_gone, OKTA_PAGE)
        + ceil_div(n_gone, OKTA_PAGE)
        + ceil_div(assigned, OKTA_APP_PAGE);
    let before = okta.requests_served();
    let (listing, seconds) = timed_read(&settings_okta(&okta)).await?;
    let okta_rate = f64::from(OKTA_PER_MINUTE) / 60.0;
    let okta_read = source_read(
        &listing,
        okta_pages,
        okta.requests_served() - before,
        seconds,
        okta_rate,
        None,
    );
    eprintln!("okta: {okta_read:?}");
    okta.shutdown();
    Ok(okta_read)
}

/// Orgwarden's read of the Google Directory API simulator (beside the Admin API simulator) at the
/// Admin SDK's documented default quota, enforced by the simulator as a minute's quota.
async fn bench_google(sim: &SimHandle, directory: &[DirectoryEntry]) -> anyhow::Result<SourceRead> {
    let persons = directory.len();
    let deleted = directory
        .iter()
        .filter(|e| e.state == DirectoryState::Deleted)
        .count();
    let google_pages = ceil_div(persons - deleted, GOOGLE_PAGE) + ceil_div(deleted, GOOGLE_PAGE);
    let config = DirectoryConfig {
        name: "google".into(),
        domains: vec![MAIN_DOMAIN.into()],
        schedule: None,
        source: DirectorySource::Google(GoogleSettings {
            service_account_key: SecretString::from(sim.google_service_account_key()),
            subject: orgwarden_sim::google_admin(),
            customer: "my_customer".into(),
            api_url: sim.google_url(),
        }),
    };
    // The quota starts whole, as a reader's does at the start of a minute.
    sim.google_set_quota_per_minute(GOOGLE_PER_MINUTE);
    let before = sim.google_requests_served();
    let (listing, seconds) = timed_read(&config).await?;
    let google_read = source_read(
        &listing,
        google_pages,
        sim.google_requests_served() - before,
        seconds,
        f64::from(GOOGLE_PER_MINUTE) / 60.0,
        None,
    );
    sim.google_set_rps(None);
    eprintln!("google: {google_read:?}");
    Ok(google_read)
}

/// Rounds of orgwarden's read of the Graph simulator and of the same pages fetched alone.
async fn bench_graph(
    sim: &SimHandle,
    directory: &[DirectoryEntry],
    bench: &DirectoryBench,
) -> anyhow::Result<SourceRead> {
    let persons = directory.len();
    let assigned = directory.iter().filter(|e| e.assigned).count();
    let graph = GraphSim::start_local(
        sim,
        GraphOptions {
            rps: Some(GRAPH_PER_SECOND),
            ..GraphOptions::default()
        },
    )
    .await?;
    let deleted = directory
        .iter()
        .filter(|e| e.state == DirectoryState::Deleted)
        .count();
    let graph_pages = ceil_div(persons - deleted, GRAPH_TOP)
        + ceil_div(deleted, GRAPH_TOP)
        + ceil_div(assigned, GRAPH_TOP);
    // A first read, untimed in the ratio: it pays for the simulator's one-time derivation of its
    // directory, sort of its lists and rendering of its pages (no part of pages arriving: a real
    // Graph renders them on its own servers) and caches orgwarden's token.
    let (first_listing, first_read_secs) = timed_read(&settings_entra(&graph)).await?;
    let bearer = graph_token(&graph).await?;
    // Then rounds of orgwarden's read and the same pages fetched alone, neither asking for a
    // token (orgwarden's is cached, the fetch-only one taken before its clock starts), in
    // alternating order so that neither always runs first; the medians are compared.
    let (mut reads, mut fetches) = (Vec::new(), Vec::new());
    let mut listing = None;
    let mut requests = 0;
    for round in 0..bench.graph_rounds {
        for fetch_first in [round % 2 == 1, round % 2 == 0] {
            let skipped = match bench.graph_side {
                GraphSide::Both => false,
                GraphSide::Read => fetch_first,
                GraphSide::Fetch => !fetch_first,
            };
            if skipped {
                continue;
            }
            // Each read starts as a reader arriving at Graph does, with its rate-limit budget
            // whole (the token bucket full): the rounds come one right after the other, far
            // faster than 800 requests a second once the pages are rendered.
            graph.set_rps(Some(GRAPH_PER_SECOND));
            if fetch_first {
                let cpu = process_cpu_secs();
                let (fetched_pages, secs) = graph_fetch_only(&graph, &bearer).await?;
                anyhow::ensure!(
                    fetched_pages == graph_pages,
                    "the fetch-only read took {fetched_pages} pages, not {graph_pages}"
                );
                fetches.push((secs, cpu_since(cpu)));
            } else {
                let cpu = process_cpu_secs();
                let before = graph.requests_served();
                let (read, secs) = timed_read(&settings_entra(&graph)).await?;
                reads.push((secs, cpu_since(cpu)));
                requests = graph.requests_served() - before;
                listing = Some(read);
            }
        }
    }
    let listing = match listing {
        Some(listing) => listing,
        // Fetch-only rounds (profiling): the first read's listing gives the persons.
        None => first_listing,
    };
    let median = |runs: &[(f64, Option<f64>)], cpu: bool| -> Option<f64> {
        let mut values: Vec<f64> = runs
            .iter()
            .map(|r| if cpu { r.1 } else { Some(r.0) })
            .collect::<Option<_>>()?;
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied()
    };
    let seconds = median(&reads, false).unwrap_or(f64::NAN);
    let fetch_only = median(&fetches, false).unwrap_or(f64::NAN);
    let mut entra_read = source_read(
        &listing,
        graph_pages,
        requests,
        seconds,
        f64::from(GRAPH_PER_SECOND),
        Some(fetch_only),
    );
    entra_read.rounds = Some(bench.graph_rounds);
    entra_read.first_read_secs = Some(first_read_secs);
    entra_read.cpu_secs = median(&reads, true);
    entra_read.fetch_only_cpu_secs = median(&fetches, true);
    entra_read.all_seconds = reads.iter().map(|r| r.0).collect();
    entra_read.all_fetch_only_secs = fetches.iter().map(|r| r.0).collect();
    eprintln!("entra: {entra_read:?}");
    graph.shutdown();
    Ok(entra_read)
}

fn source_read(
    listing: &DirectoryListing,
    pages: usize,
    requests: u64,
    seconds: f64,
    rate: f64,
    fetch_only_secs: Option<f64>,
) -> SourceRead {
    let bound = pages as f64 / rate;
    let arrival = fetch_only_secs.map_or(bound, |f| f.max(bound));
    SourceRead {
        persons: listing.people.len(),
        pages,
        requests,
        seconds,
        rate_limit_per_sec: rate,
        bound_at_rate_limit_secs: bound,
        fetch_only_secs,
        arrival_secs: arrival,
        ratio: seconds / arrival,
        rounds: None,
        first_read_secs: None,
        cpu_secs: None,
        fetch_only_cpu_secs: None,
        all_seconds: Vec::new(),
        all_fetch_only_secs: Vec::new(),
    }
}

/// A bearer token of the simulator, as orgwarden's read asks for it.
async fn graph_token(graph: &GraphSim) -> anyhow::Result<String> {
    use orgwarden::directory::entra::SCOPE;
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/{DEMO_TENANT_ID}/oauth2/v2.0/token",
            graph.base_url()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_GRAPH_CLIENT_ID),
            ("client_secret", DEMO_GRAPH_CLIENT_SECRET),
            ("scope", SCOPE),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(token["access_token"]
        .as_str()
        .context("no access_token in the token answer")?
        .to_owned())
}

/// The Graph pages orgwarden's read asks for, fetched alone with `bearer` as orgwarden asks for
/// them: the users, the deleted users and the application's assignments, three chains read side
/// by side (as orgwarden reads them), each one page at a time, each page's body read whole and
/// only its `@odata.nextLink` looked at. Returns the pages and the seconds.
async fn graph_fetch_only(graph: &GraphSim, bearer: &str) -> anyhow::Result<(usize, f64)> {
    use orgwarden::directory::entra::{ASSIGNMENT_SELECT, SELECT, TOP};
    let base = graph.base_url();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let users = format!("$select={SELECT}&$top={TOP}");
    let (a, b, c) = tokio::try_join!(
        graph_chain(&client, bearer, format!("{base}/v1.0/users?{users}")),
        graph_chain(
            &client,
            bearer,
            format!("{base}/v1.0/directory/deletedItems/microsoft.graph.user?{users}")
        ),
        graph_chain(
            &client,
            bearer,
            format!(
                "{base}/v1.0/servicePrincipals/{GRAPH_CLAUDE_SP_ID}/appRoleAssignedTo?$select={ASSIGNMENT_SELECT}&$top={TOP}"
            )
        ),
    )?;
    Ok((a + b + c, started.elapsed().as_secs_f64()))
}

/// One chain of Graph pages from `first`, one at a time: each body read whole and its
/// `@odata.nextLink` followed. Returns the pages.
async fn graph_chain(
    client: &reqwest::Client,
    bearer: &str,
    first: String,
) -> anyhow::Result<usize> {
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(rename = "@odata.nextLink", default)]
        next_link: Option<String>,
    }
    let mut pages = 0;
    let mut next = Some(first);
    while let Some(url) = next {
        let body = client
            .get(&url)
            .bearer_auth(bearer)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        next = serde_json::from_slice::<Page>(&body)?.next_link;
        pages += 1;
    }
    Ok(pages)
}

/// The benchmark organization (the snapshot bench's 1× sizes) with its Okta directory read
/// before the snapshot, as the audit cycle reads a source; then the audit of copies of that
/// database without and with the source configured. With `save_db`, that database is also copied
/// there (for `audit --db PATH --with-directory`).
pub(crate) async fn audit_with_directory(
    save_db: Option<&std::path::Path>,
) -> anyhow::Result<AuditWithDirectory> {
    eprintln!("seeding the benchmark organization for the audit...");
    let sim = SimHandle::start_local(SimOptions {
        sizes: SeedSizes {
            members: 20_000,
            invites: 5_000,
            workspaces: 100,
            workspace_members: 40_000,
            keys: 50_000,
        },
        now: Some(fixed_now()),
        ..SimOptions::default()
    })
    .await?;
    let okta = OktaSim::start_local(
        &sim,
        OktaOptions {
            // Not measured here: no rate limit.
            rate_limit: u32::MAX,
            ..OktaOptions::default()
        },
    )
    .await?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let db = dir.path().join("orgwarden.db");
    let source = audit_source(&okta.base_url());
    let text = format!(
        "[api]\nbase_url = \"{}\"\n[store]\npath = {:?}\n\n{source}",
        sim.base_url(),
        db.display().to_string()
    );
    let env = Environment {
        vars: vec![("ANTHROPIC_ADMIN_KEY".into(), DEMO_ADMIN_KEY.into())],
    };
    let (config, _) = Config::from_toml(&text, &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock = orgwarden::clock::SystemClock::shared();
    let directory_persons = {
        let mut store = orgwarden::store::Store::open_writer(&db, "bench", clock.now())?;
        let mut ctx = orgwarden::jobs::JobContext::new(&config, &mut store, clock.clone());
        let sources: Vec<&DirectoryConfig> = config.directories.iter().collect();
        let reads = orgwarden::jobs::directory_job(&mut ctx, &sources).await?;
        if let Some(error) = reads.iter().find_map(|r| r.error.clone()) {
            anyhow::bail!("the directory read failed: {error}");
        }
        orgwarden::jobs::snapshot_job(&mut ctx, false).await?;
        store.checkpoint()?;
        reads
            .iter()
            .map(|r| r.active + r.disabled + r.deleted)
            .sum()
    };
    okta.shutdown();
    sim.shutdown();
    if let Some(path) = save_db {
        std::fs::copy(&db, path).context("saving the database")?;
    }

    const RUNS: usize = 3;
    let mut without = Vec::new();
    let mut with = Vec::new();
    for run in 0..RUNS {
        for (label, extra, out) in [("a", "", &mut without), ("b", source.as_str(), &mut with)] {
            let copy = dir.path().join(format!("{label}{run}.db"));
            std::fs::copy(&db, &copy).context("copying the database")?;
            out.push(crate::audit::bench_audit_with(&copy, clock.clone(), extra)?);
        }
    }
    let median = |runs: &[crate::audit::BenchAudit],
                  f: &dyn Fn(&crate::audit::BenchAudit) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let cpu = |runs: &[crate::audit::BenchAudit]| -> Option<f64> {
        runs.iter().all(|r| r.cpu_secs.is_some()).then(|| {
            median(runs, &|r: &crate::audit::BenchAudit| {
                r.cpu_secs.unwrap_or(0.0)
            })
        })
    };
    let without_secs = median(&without, &|r| r.secs);
    let with_secs = median(&with, &|r| r.secs);
    let (without_cpu_secs, with_cpu_secs) = (cpu(&without), cpu(&with));
    Ok(AuditWithDirectory {
        directory_persons,
        runs: RUNS,
        without_secs,
        with_secs,
        without_cpu_secs,
        with_cpu_secs,
        without_load_secs: median(&without, &|r| r.load_secs),
        with_load_secs: median(&with, &|r| r.load_secs),
        without_evaluate_secs: median(&without, &|r| r.evaluate_secs),
        with_evaluate_secs: median(&with, &|r| r.evaluate_secs),
        findings_without: without[0].findings,
        findings_with: with[0].findings,
        directory_rules_add_secs: with_secs - without_secs,
        directory_rules_add_cpu_secs: with_cpu_secs.zip(without_cpu_secs).map(|(w, o)| w - o),
    })
}

/// The audit's directory source: the Okta simulator at `org_url` (the audit only reads what the
/// store recorded, so a saved database is audited with any URL).
pub(crate) fn audit_source(org_url: &str) -> String {
    format!(
        "[[directories]]\nname = \"okta\"\ntype = \"okta\"\ndomains = [\"{MAIN_DOMAIN}\"]\n\
         org_url = \"{org_url}\"\napi_token = \"{DEMO_OKTA_TOKEN}\"\napp_id = \"{OKTA_CLAUDE_APP_ID}\"\n"
    )
}

/// This process's CPU time so far (`/proc/self/stat`), where Linux gives it.
fn process_cpu_secs() -> Option<f64> {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(crate::cpu_secs_of_stat)
}

fn cpu_since(start: Option<f64>) -> Option<f64> {
    Some(process_cpu_secs()? - start?)
}
