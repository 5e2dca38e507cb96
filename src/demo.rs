//! `orgwarden demo`: the whole cycle, twice, against an in-process simulated organization.
//!
//! It needs no key, no network and no configuration: the simulator listens on loopback, the
//! configuration is written to `<dir>/config.toml` (a real file a user can read and reuse), and
//! everything lands under `<dir>` (default `./orgwarden-demo/`). It calls the same job functions
//! as the CLI and the daemon; only the base URL differs from production. The company directory
//! is the Okta simulator, started beside the Admin API simulator on loopback with the directory
//! seeded from the same organization and read with an API token (`SSWS`), so a cycle shows people
//! disabled in Okta who still have access in Claude.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Duration;

use crate::clock::SystemClock;
use crate::config::{Config, Environment};
use crate::jobs::{self, JobContext};
use crate::org::DirectoryStatus;
use crate::output::{render, Format};
use crate::policy::FindingStatus;
use crate::store::{Store, WriterLock};
use orgwarden_sim::idp::okta::{DEMO_OKTA_TOKEN, OKTA_CLAUDE_APP_ID};
use orgwarden_sim::{OktaOptions, OktaSim, SimHandle, SimOptions, DEMO_ADMIN_KEY};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the database, the configuration, the reports and the outbox go.
    #[arg(long, default_value = "orgwarden-demo")]
    pub dir: PathBuf,
}

fn demo_config(dir: &Path, base_url: &str, okta_url: &str) -> String {
    format!(
        r#"# Written by `orgwarden demo`; a complete configuration you can start from.
[api]
base_url = "{base_url}"
requests_per_second = 0

[store]
path = "{db}"

[rules.departed_domains]
departed_domains = ["contractor.example.net"]
remediate = true

[rules.offboarding_roster]
roster_csv = "{roster}"
remediate = true

[rules.stale_invites]
remediate = true

[rules.orphaned_keys]
remediate = true

[remediation]
mode = "dry-run"
min_consecutive_snapshots = 1
min_finding_age = "0s"

[mail]
from = "orgwarden <orgwarden@example.com>"
to = ["security@example.com"]
transport = "file"
dir = "{outbox}"

[report]
out_dir = "{reports}"

# The company directory: the Okta simulator, read with each audit cycle with an API token.
# People disabled there (SUSPENDED, DEPROVISIONED, LOCKED_OUT) but still in the organization are
# `directory_departed` findings; members it does not know are `directory_unknown`; members not
# assigned to the Claude app are `assignment_drift`.
[[directories]]
name = "okta"
type = "okta"
domains = ["{domain}"]
org_url = "{okta_url}"
api_token_file = "{token}"
app_id = "{app_id}"
"#,
        domain = orgwarden_sim::MAIN_DOMAIN,
        token = dir.join(OKTA_TOKEN_FILE).display(),
        app_id = OKTA_CLAUDE_APP_ID,
        db = dir.join("orgwarden.db").display(),
        roster = dir.join("departed.csv").display(),
        outbox = dir.join("outbox").display(),
        reports = dir.join("reports").display(),
    )
}

/// Where the demo writes the Okta simulator's API token (a demo value, mode 0600).
const OKTA_TOKEN_FILE: &str = "okta-token";

/// Writes `secret` to a new file only its owner can read.
fn write_private(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut file| file.write_all(secret.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// A directory export (the `csv` source's format with a `status` column) of `entries`.
pub fn directory_export_csv(entries: &[orgwarden_sim::DirectoryEntry]) -> String {
    use orgwarden_sim::DirectoryState;
    let mut text = String::from("id,email,aliases,status,since,assigned\n");
    for e in entries {
        let status = match e.state {
            DirectoryState::Active => "active",
            DirectoryState::Suspended => "SUSPENDED",
            DirectoryState::Deprovisioned => "DEPROVISIONED",
            DirectoryState::LockedOut => "LOCKED_OUT",
            DirectoryState::Deleted => "deleted",
        };
        text.push_str(&format!(
            "{},{},{},{status},{},{}\n",
            e.id,
            e.email,
            e.aliases.join(";"),
            e.state_changed.to_rfc3339(),
            e.assigned
        ));
    }
    text
}

/// The organization changes between the two cycles, as it would in a week.
struct Week {
    leaver: String,
    promoted: String,
}

fn a_week_passes(sim: &SimHandle) -> anyhow::Result<Week> {
    let week = sim.with_state(|s| {
        let users = s.users();
        let keys = s.api_keys();
        // Someone who created active keys leaves.
        let leaver = users
            .iter()
            .filter(|u| u["role"] != "admin" && u["role"] != "primary_owner")
            .find(|u| {
                keys.iter()
                    .any(|k| k["created_by"]["id"] == u["id"] && k["status"] == "active")
            })
            .map(|u| u["email"].as_str().unwrap_or_default().to_owned());
        // An ordinary member becomes an admin.
        let promoted = users
            .iter()
            .rev()
            .find(|u| u["role"] == "user" || u["role"] == "developer")
            .map(|u| u["email"].as_str().unwrap_or_default().to_owned());
        let (Some(leaver), Some(promoted)) = (leaver, promoted) else {
            return None;
        };
        let id_of = |email: &str| {
            users
                .iter()
                .find(|u| u["email"] == email)
                .and_then(|u| u["id"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        s.remove_user(&id_of(&leaver));
        s.set_user_role(&id_of(&promoted), "admin");
        Some(Week { leaver, promoted })
    });
    // The clock moves on: the invite sent 20 days and 23 hours ago expires.
    sim.advance(Duration::hours(2));
    week.context("the seeded organization has no member with keys to leave")
}

/// The file that marks a directory as the demo's own: only such a directory (or an empty or
/// new one) is ever cleared.
pub const MARKER: &str = ".orgwarden-demo";

/// Makes `dir` the demo's: creates it, or takes an empty one, or one with the marker. Anything
/// else is refused before a file is touched.
fn claim_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let existed = dir.exists();
    if existed {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        let empty = entries.next().is_none();
        if !empty && !dir.join(MARKER).is_file() {
            anyhow::bail!(
                "{} is not empty and was not created by `orgwarden demo` (no {MARKER} file in it); \
                 nothing was touched. Give --dir a new or empty directory",
                dir.display()
            );
        }
    } else {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let marker = dir.join(MARKER);
    if !marker.is_file() {
        std::fs::write(
            &marker,
            "Created by `orgwarden demo`: the next demo may replace everything in this directory.\n",
        )
        .with_context(|| format!("writing {}", marker.display()))?;
    }
    Ok(dir)
}

/// Runs the demo and returns the summary to print.
pub async fn demo_command(args: DemoArgs) -> anyhow::Result<String> {
    let dir = claim_dir(&args.dir)?;
    let clock = SystemClock::shared();
    // The lock first: a demo never clears a database some process is using.
    let db = dir.join("orgwarden.db");
    let lock = WriterLock::acquire(&db, "orgwarden demo", Some(clock.now()))?;
    // A demo starts from a clean slate; everything it writes is under `dir`.
    for stale in ["orgwarden.db", "orgwarden.db-wal", "orgwarden.db-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    for stale in ["outbox", "reports"] {
        let _ = std::fs::remove_dir_all(dir.join(stale));
    }

    let sim = SimHandle::start_local(SimOptions::default()).await?;
    let (roster_email, expiring) = sim.with_state(|s| {
        let now = s.now();
        // One person on the offboarding roster, and an invite about to expire.
        let email = s
            .users()
            .iter()
            .filter(|u| u["role"] == "user")
            .nth(2)
            .and_then(|u| u["email"].as_str())
            .unwrap_or("nobody@example.com")
            .to_owned();
        let invite = s.add_invite(
            "new.hire@example.com",
            "user",
            now - Duration::days(21) + Duration::hours(1),
        );
        (email, invite)
    });
    let last_day = (clock.now() - Duration::days(3)).format("%Y-%m-%d");
    std::fs::write(
        dir.join("departed.csv"),
        format!("email,last_day\n{roster_email},{last_day}\n"),
    )?;
    // The identity provider: Okta, serving the directory of the same organization.
    let okta = OktaSim::start_local(&sim, OktaOptions::default()).await?;
    write_private(&dir.join(OKTA_TOKEN_FILE), DEMO_OKTA_TOKEN)?;
    let config_path = dir.join("config.toml");
    std::fs::write(
        &config_path,
        demo_config(&dir, &sim.base_url(), &okta.base_url()),
    )?;
    let env = Environment {
        vars: vec![("ANTHROPIC_ADMIN_KEY".to_owned(), DEMO_ADMIN_KEY.to_owned())],
    };
    let text = std::fs::read_to_string(&config_path)?;
    let (config, _) = Config::from_toml(&text, &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut store = Store::open_writer_locked(&config.store.path, lock, clock.now())?;
    let mut ctx = JobContext::new(&config, &mut store, clock);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "orgwarden demo: simulated organization at {}, its Okta directory at {}\n",
        sim.base_url(),
        okta.base_url()
    );

    let first = cycle(&mut ctx, 1).await?;
    let departed = first.departed.clone();
    let week = a_week_passes(&sim)?;
    let second = cycle(&mut ctx, 2).await?;

    let _ = writeln!(
        out,
        "Cycle 1: snapshot run {} ({} members, {} invites, {} API keys); {} findings, all new (first audit).",
        first.run_id, first.members, first.invites, first.keys, first.findings
    );
    for line in &first.directories {
        let _ = writeln!(out, "  {line}");
    }
    match &departed {
        Some((email, evidence)) => {
            let _ = writeln!(
                out,
                "  Disabled in Okta, still in Claude (directory_departed): {email}: {evidence}."
            );
        }
        None => {
            let _ = writeln!(out, "  Nobody disabled in Okta is still in Claude.");
        }
    }
    let _ = writeln!(
        out,
        "Then a week passed: {} left, {} became an admin, invite {expiring} expired.\n",
        week.leaver, week.promoted
    );
    let _ = writeln!(
        out,
        "Cycle 2: snapshot run {}; {} findings ({} new, {} resolved).\n",
        second.run_id, second.findings, second.new, second.resolved
    );

    let _ = writeln!(out, "Findings by rule (cycle 2):");
    let findings = store.findings(false)?;
    let mut rules: std::collections::BTreeMap<&str, [usize; 4]> = Default::default();
    for f in &findings {
        let slot = match f.status {
            FindingStatus::New => 0,
            FindingStatus::Open => 1,
            FindingStatus::Resolved => 2,
            FindingStatus::Exempted => 3,
        };
        rules.entry(f.rule.as_str()).or_default()[slot] += 1;
    }
    let rows = rules
        .iter()
        .map(|(rule, n)| {
            let mut row = vec![(*rule).to_owned()];
            row.extend(n.iter().map(usize::to_string));
            row
        })
        .collect();
    out.push_str(&crate::output::table(
        &["rule", "new", "open", "resolved", "exempted"],
        rows,
    ));

    let changes = crate::org::diff(
        &store.state_at(first.run_id)?,
        &store.state_at(second.run_id)?,
    );
    let _ = writeln!(
        out,
        "\nWhat changed between run {} and run {}:",
        first.run_id, second.run_id
    );
    out.push_str(&render(Format::Table, &changes));

    let _ = writeln!(
        out,
        "\nCleanup plan (dry-run: nothing was changed; `blocked_by` lists every guard that holds an action back, `cleanup --format json` says why):"
    );
    out.push_str(&render(Format::Table, &second.plan));

    let _ = writeln!(out, "\nFiles written:");
    let _ = writeln!(out, "  configuration  {}", config_path.display());
    let _ = writeln!(out, "  database       {}", config.store.path.display());
    for path in first.files.iter().chain(&second.files) {
        let _ = writeln!(out, "  report         {}", path.display());
    }
    let mut emails: Vec<PathBuf> = std::fs::read_dir(dir.join("outbox"))
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    emails.sort();
    for path in emails {
        let _ = writeln!(out, "  email          {}", path.display());
    }
    let _ = writeln!(
        out,
        "\nTry: orgwarden --config {} status   (the simulator is gone, but the history stays)",
        config_path.display()
    );
    okta.shutdown();
    sim.shutdown();
    Ok(out)
}

struct CycleResult {
    run_id: i64,
    members: u64,
    invites: u64,
    keys: u64,
    findings: usize,
    new: usize,
    resolved: usize,
    plan: Vec<crate::remediate::PlannedAction>,
    files: Vec<PathBuf>,
    /// What each directory read found, one line per source.
    directories: Vec<String>,
    /// A member the directory lists as disabled: (email, the finding's evidence).
    departed: Option<(String, String)>,
}

/// One scheduled cycle, as the daemon runs it, then a report.
async fn cycle(ctx: &mut JobContext<'_>, n: u32) -> anyhow::Result<CycleResult> {
    let cycle = jobs::audit_cycle(ctx).await?;
    let out = ctx.config.report.out_dir.join(format!("cycle-{n}"));
    let report = jobs::report_job(
        ctx,
        &jobs::ReportOptions {
            out: Some(&out),
            send: true,
            ..jobs::ReportOptions::default()
        },
    )
    .await?;
    let audit = &cycle.cleanup.audit.result;
    let counts = cycle.snapshot.counts;
    let directories = jobs::directory_views(ctx.config, ctx.store, ctx.clock.now())?
        .iter()
        .map(|view| match &view.read {
            Err(error) => format!("Directory {}: read failed: {error}", view.name),
            Ok(read) => {
                let count = |f: fn(&DirectoryStatus) -> bool| {
                    read.listing.people.iter().filter(|p| f(&p.status)).count()
                };
                format!(
                    "Directory {}: {} people, {} disabled, {} deleted; {} assigned to the Claude app.",
                    view.name,
                    read.listing.people.len(),
                    count(|s| matches!(s, DirectoryStatus::Disabled(_))),
                    count(|s| *s == DirectoryStatus::Deleted),
                    read.listing.assigned.as_ref().map_or(0, Vec::len)
                )
            }
        })
        .collect();
    let departed = audit
        .findings
        .iter()
        .find(|f| f.rule == "directory_departed" && f.subject_kind.as_str() == "member")
        .map(|f| (f.subject.clone(), f.evidence.clone()));
    Ok(CycleResult {
        run_id: cycle.snapshot.run_id,
        members: counts.members,
        invites: counts.invites,
        keys: counts.api_keys,
        findings: audit.findings.len() - audit.n_resolved,
        new: audit.n_new,
        resolved: audit.n_resolved,
        plan: cycle.cleanup.plan.actions,
        files: report.files,
        directories,
        departed,
    })
}
