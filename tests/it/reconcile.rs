//! Issue 17's "done when", end to end: an audit cycle (the daemon's, through [`TestApp`]) with a
//! `[[directories]]` source pointing at the Okta, Microsoft Graph and Google Directory simulators
//! and at a real `slapd` (with TLS), whose directory findings are exactly the seeded people who
//! are disabled or unknown in that directory and still have access in the organization: their
//! memberships, explicit workspace memberships, pending invites and active keys; none of the
//! active people's. A source that is down leaves the directory rules `not_evaluated`, naming it,
//! and resolves nothing.
//!
//! The expected set is computed by [`expected_findings`] from the simulator's own state (what
//! the Admin API serves) and [`SimState::directory`], with each source's view of the seeded
//! states written out in [`Source::shows`]: never from orgwarden's code.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::Duration;
use orgwarden::jobs::CycleSummary;
use orgwarden::policy::FindingStatus;
use orgwarden_sim::idp::graph::{DEMO_GRAPH_CLIENT_ID, DEMO_GRAPH_CLIENT_SECRET, DEMO_TENANT_ID};
use orgwarden_sim::idp::okta::{DEMO_OKTA_TOKEN, OKTA_CLAUDE_APP_ID};
use orgwarden_sim::{
    google_admin, DirectoryEntry, DirectoryState, GraphOptions, GraphSim, OktaOptions, OktaSim,
    SimState, MAIN_DOMAIN,
};

use crate::app::TestApp;
use crate::slapd::Slapd;

/// One directory finding: (rule, subject kind, subject id).
pub type Subject = (String, String, String);

/// How a source sees a seeded person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// Listed and allowed to sign in.
    Active,
    /// Listed as disabled, suspended, deprovisioned, locked out or deleted.
    Departed,
    /// Not listed at all: unknown to the directory.
    Absent,
}

/// The LDAP `disabled_rule`s these tests read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LdapRule {
    ActiveDirectory,
    PwdAccountLockedTime,
    ShadowExpire,
}

impl LdapRule {
    fn toml(self) -> &'static str {
        match self {
            LdapRule::ActiveDirectory => "active_directory",
            LdapRule::PwdAccountLockedTime => "pwd_account_locked_time",
            LdapRule::ShadowExpire => "shadow_expire",
        }
    }
}

/// The directory sources, each with its own view of the seeded states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `orgwarden::demo::directory_export_csv`: one row per person with their state's word.
    CsvExport,
    Okta,
    Entra,
    Google,
    Ldap(LdapRule),
}

impl Source {
    /// What the source shows of a person in `state` in the seeded directory.
    pub fn shows(self, state: DirectoryState) -> Shown {
        use DirectoryState::{Active, Deleted, Deprovisioned, LockedOut, Suspended};
        match (self, state) {
            (_, Active) => Shown::Active,
            // The export writes every state's word (`SUSPENDED`, ..., `deleted`).
            (Source::CsvExport, _) => Shown::Departed,
            // `SUSPENDED`, `LOCKED_OUT`, `DEPROVISIONED`; Okta has no "deleted" user that a list
            // shows, so the simulator serves a deleted person as `DEPROVISIONED` (found by the
            // source's `status eq "DEPROVISIONED"` search).
            (Source::Okta, _) => Shown::Departed,
            // `accountEnabled = false`; a deleted user comes from `directory/deletedItems`.
            (Source::Entra, _) => Shown::Departed,
            // `suspended` (suspended, locked out), `archived` (deprovisioned), `deletionTime`.
            (Source::Google, _) => Shown::Departed,
            // LDAP forgets a deleted entry: the tree does not hold it, so the person is unknown.
            (Source::Ldap(_), Deleted) => Shown::Absent,
            // The tree writes `userAccountControl` 514 for every disabled state...
            (Source::Ldap(LdapRule::ActiveDirectory), _) => Shown::Departed,
            // ... `pwdAccountLockedTime` for the suspended and the locked out only ...
            (Source::Ldap(LdapRule::PwdAccountLockedTime), Suspended | LockedOut) => {
                Shown::Departed
            }
            // ... and a past `shadowExpire` for the deprovisioned only; under each rule the
            // others' entries look like any active account.
            (Source::Ldap(LdapRule::ShadowExpire), Deprovisioned) => Shown::Departed,
            (Source::Ldap(_), _) => Shown::Active,
        }
    }
}

fn text(value: &serde_json::Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The directory findings an audit of `state` must list when `source`, authoritative for
/// [`MAIN_DOMAIN`] (and its subdomains), shows `directory`:
///
/// - `directory_departed` for each member, pending invite and explicit membership in a
///   non-archived workspace of a person the source shows departed, and for each active key whose
///   owner (`principal.user_id` of a `user_actor`, else `created_by.id` of type `user`, as the
///   Admin API documents them) is a member the source shows departed, or a former member in
///   `seen_former` (removed after an earlier snapshot of orgwarden's) the source shows departed.
///   A key of someone the simulator removed before orgwarden's first snapshot has no owner
///   orgwarden ever saw (it is `orphaned_keys`' finding, "never seen by orgwarden");
/// - `directory_unknown` for each member and pending invite the source does not list.
///
/// Every seeded state change is at least a day old, so no "since" lies in the future.
pub fn expected_findings(
    state: &SimState,
    directory: &[DirectoryEntry],
    source: Source,
    seen_former: &HashSet<String>,
) -> BTreeSet<Subject> {
    let by_address: HashMap<String, DirectoryState> = directory
        .iter()
        .flat_map(|e| {
            std::iter::once(&e.email)
                .chain(&e.aliases)
                .map(move |a| (a.to_lowercase(), e.state))
        })
        .collect();
    let shown = |email: &str| -> Option<Shown> {
        let email = email.trim().to_lowercase();
        let (_, domain) = email.rsplit_once('@')?;
        let covered = domain == MAIN_DOMAIN || domain.ends_with(&format!(".{MAIN_DOMAIN}"));
        covered.then(|| {
            by_address
                .get(&email)
                .map_or(Shown::Absent, |s| source.shows(*s))
        })
    };
    let finding = |rule: &str, kind: &str, id: String| (rule.to_owned(), kind.to_owned(), id);
    let mut want = BTreeSet::new();

    let mut departed_members = HashSet::new();
    for user in state.users() {
        let id = text(&user["id"]);
        match shown(&text(&user["email"])) {
            Some(Shown::Departed) => {
                want.insert(finding("directory_departed", "member", id.clone()));
                departed_members.insert(id);
            }
            Some(Shown::Absent) => {
                want.insert(finding("directory_unknown", "member", id));
            }
            Some(Shown::Active) | None => {}
        }
    }
    for workspace in state.workspaces() {
        if !workspace["archived_at"].is_null() {
            continue;
        }
        for membership in state.workspace_members(&text(&workspace["id"])) {
            let user = text(&membership["user_id"]);
            if departed_members.contains(&user) {
                let id = format!("{}/{user}", text(&membership["workspace_id"]));
                want.insert(finding("directory_departed", "workspace_member", id));
            }
        }
    }
    for invite in state.invites() {
        if invite["status"] != "pending" {
            continue;
        }
        let id = text(&invite["id"]);
        match shown(&text(&invite["email"])) {
            Some(Shown::Departed) => {
                want.insert(finding("directory_departed", "invite", id));
            }
            Some(Shown::Absent) => {
                want.insert(finding("directory_unknown", "invite", id));
            }
            Some(Shown::Active) | None => {}
        }
    }
    let mut departed_owners = departed_members.clone();
    for former in state.former_members() {
        let id = text(&former["id"]);
        if seen_former.contains(&id) && shown(&text(&former["email"])) == Some(Shown::Departed) {
            departed_owners.insert(id);
        }
    }
    for key in state.api_keys() {
        if key["status"] != "active" {
            continue;
        }
        let principal = &key["principal"];
        let owner = if principal.is_object() {
            (principal["type"] == "user_actor").then(|| text(&principal["user_id"]))
        } else {
            (key["created_by"]["type"] == "user").then(|| text(&key["created_by"]["id"]))
        };
        if owner.is_some_and(|owner| departed_owners.contains(&owner)) {
            want.insert(finding("directory_departed", "api_key", text(&key["id"])));
        }
    }
    want
}

/// The directory rules' findings of a cycle that are not resolved.
pub fn directory_findings(summary: &CycleSummary) -> BTreeSet<Subject> {
    summary
        .cleanup
        .audit
        .result
        .findings
        .iter()
        .filter(|f| f.rule.starts_with("directory_") && f.status != FindingStatus::Resolved)
        .map(|f| {
            (
                f.rule.clone(),
                f.subject_kind.as_str().to_owned(),
                f.subject_id.clone(),
            )
        })
        .collect()
}

/// Asserts that the cycle's directory findings are exactly `expected_findings` of the
/// simulator's state for `source`, that every kind of subject occurs, and that both rules ran.
fn assert_exact(
    app: &TestApp,
    summary: &CycleSummary,
    source: Source,
    seen_former: &HashSet<String>,
) -> BTreeSet<Subject> {
    let state = app.sim.snapshot_state();
    let want = expected_findings(&state, &state.directory(), source, seen_former);
    let kinds: BTreeSet<(&str, &str)> = want
        .iter()
        .map(|(rule, kind, _)| (rule.as_str(), kind.as_str()))
        .collect();
    for kind in [
        ("directory_departed", "member"),
        ("directory_departed", "invite"),
        ("directory_departed", "api_key"),
        ("directory_unknown", "member"),
    ] {
        assert!(
            kinds.contains(&kind),
            "the seed has no {kind:?} for {source:?}"
        );
    }
    let got = directory_findings(summary);
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{source:?}: missing {missing:?}, unexpected {extra:?}"
    );
    for rule in ["directory_departed", "directory_unknown"] {
        assert_eq!(
            outcome(summary, rule).0,
            "evaluated",
            "{rule} for {source:?}"
        );
    }
    want
}

/// `orgwarden audit --no-record --format json`, the real binary on the app's database with
/// `extra` configured (beside the app, which still holds the writer lock): its directory
/// findings are `want` too.
async fn assert_audit_json(app: &TestApp, extra: &str, want: &BTreeSet<Subject>) {
    let config = crate::helpers::write_config(app.dir.path(), &app.sim.base_url(), extra);
    let (code, out, err) = crate::helpers::run(crate::helpers::orgwarden(
        &config,
        &["audit", "--no-record", "--format", "json"],
    ))
    .await;
    assert!(code == 0 || code == 1, "exit {code}: {err}");
    let findings: Vec<serde_json::Value> = serde_json::from_str(&out).expect(&out);
    let got: BTreeSet<Subject> = findings
        .iter()
        .filter(|f| text(&f["rule"]).starts_with("directory_") && f["status"] != "resolved")
        .map(|f| {
            (
                text(&f["rule"]),
                text(&f["subject_kind"]),
                text(&f["subject_id"]),
            )
        })
        .collect();
    assert_eq!(&got, want, "audit --format json");
}

/// Configures `extra`, runs a cycle, and checks its findings and `audit --format json`'s.
pub async fn audit_through(app: &mut TestApp, extra: &str, source: Source) -> CycleSummary {
    audit_through_with(app, extra, source, &HashSet::new()).await
}

/// [`audit_through`] after members orgwarden saw (`seen_former`, user ids) were removed.
async fn audit_through_with(
    app: &mut TestApp,
    extra: &str,
    source: Source,
    seen_former: &HashSet<String>,
) -> CycleSummary {
    app.reconfigure(extra);
    let summary = app.cycle().await;
    let want = assert_exact(app, &summary, source, seen_former);
    assert_audit_json(app, extra, &want).await;
    summary
}

/// (status, reason) of a rule in a cycle.
fn outcome(summary: &CycleSummary, rule: &str) -> (String, Option<String>) {
    let o = summary
        .cleanup
        .audit
        .rules
        .iter()
        .find(|o| o.rule.as_str() == rule)
        .unwrap_or_else(|| panic!("no outcome for {rule}"));
    (
        o.status.as_str().to_owned(),
        o.status.reason().map(str::to_owned),
    )
}

/// After a first cycle with the source up, a cycle with it down: both directory rules are
/// `not_evaluated` naming `source`, and every directory finding stays as it was.
pub async fn assert_down_resolves_nothing(
    app: &mut TestApp,
    before: &BTreeSet<Subject>,
    name: &str,
) {
    assert!(!before.is_empty());
    app.advance(Duration::hours(1));
    let second = app.cycle().await;
    for rule in ["directory_departed", "directory_unknown"] {
        let (status, reason) = outcome(&second, rule);
        assert_eq!(status, "not_evaluated", "{rule}");
        let reason = reason.unwrap_or_default();
        assert!(reason.contains(&format!("directory {name}")), "{reason}");
    }
    assert!(
        !second
            .cleanup
            .audit
            .result
            .findings
            .iter()
            .any(|f| f.rule.starts_with("directory_") && f.status == FindingStatus::Resolved),
        "a source that is down resolved a finding"
    );
    let still_active: BTreeSet<Subject> = app
        .store
        .findings(true)
        .unwrap()
        .into_iter()
        .filter(|f| f.rule.starts_with("directory_"))
        .map(|f| (f.rule, f.subject_kind.as_str().to_owned(), f.subject_id))
        .collect();
    assert_eq!(&still_active, before);
}

/// A `TestApp` on the directory seed with `extra` configuration, where every member the seeded
/// directory does not list as active also holds keys as people do when they leave: an active key
/// they created, a revoked one (never a finding), a key an active member created but whose
/// `principal` is the leaver (theirs), and one the leaver created for an active member's
/// `principal` (not theirs). And a pending invite goes to a person of each state the seeded
/// directory has (active, each disabled state, deleted, absent).
pub async fn directory_app(extra: &str) -> TestApp {
    let app = TestApp::with_options(crate::helpers::directory_seed(), extra).await;
    app.sim.with_state(|s| {
        // The directory decides a newcomer's state from their address: try addresses on a
        // scratch copy, then invite one of each state.
        let mut scratch = s.clone();
        let candidates: Vec<String> = (0..400)
            .map(|n| format!("invitee.{n}@{MAIN_DOMAIN}"))
            .collect();
        for email in &candidates {
            scratch.add_invite(email, "user", s.now());
        }
        let directory = scratch.directory();
        let state_of = |email: &str| {
            directory
                .iter()
                .find(|e| e.email == email || e.aliases.iter().any(|a| a == email))
                .map(|e| e.state)
        };
        let mut invited = HashSet::new();
        for email in &candidates {
            if invited.insert(state_of(email)) {
                s.add_invite(email, "user", s.now() - Duration::days(1));
            }
        }
        assert_eq!(invited.len(), 6, "an invite of each state: {invited:?}");

        let inactive: HashSet<String> = s
            .directory()
            .into_iter()
            .filter(|e| !e.state.is_active())
            .flat_map(|e| std::iter::once(e.email).chain(e.aliases))
            .collect();
        let users = s.users();
        let ids = |departed: bool| -> Vec<String> {
            users
                .iter()
                .filter(|u| inactive.contains(&text(&u["email"]).to_lowercase()) == departed)
                .map(|u| text(&u["id"]))
                .collect()
        };
        let (leavers, stayers) = (ids(true), ids(false));
        let created = s.now() - Duration::days(30);
        for (n, (leaver, stayer)) in leavers.iter().zip(stayers.iter().cycle()).enumerate() {
            let id = Some(leaver.as_str());
            s.add_api_key(&format!("leftover-{n}"), None, id, "active", created);
            s.add_api_key(&format!("revoked-{n}"), None, id, "inactive", created);
            let theirs = s.add_api_key(
                &format!("personal-{n}"),
                None,
                Some(stayer),
                "active",
                created,
            );
            s.set_key_principal_user(&theirs, leaver);
            let not_theirs =
                s.add_api_key(&format!("handed-over-{n}"), None, id, "active", created);
            s.set_key_principal_user(&not_theirs, stayer);
        }
    });
    app
}

/// [`directory_app`] with no source configured yet.
async fn app() -> TestApp {
    directory_app("").await
}

fn okta_toml(okta: &OktaSim, app: &TestApp) -> String {
    let token = app.dir.path().join("okta-token");
    std::fs::write(&token, DEMO_OKTA_TOKEN).unwrap();
    format!(
        "[[directories]]\nname = \"okta\"\ntype = \"okta\"\ndomains = [\"{MAIN_DOMAIN}\"]\n\
         org_url = \"{}\"\napi_token_file = {:?}\napp_id = \"{OKTA_CLAUDE_APP_ID}\"\n",
        okta.base_url(),
        token.display().to_string()
    )
}

/// A first audit cycle through the Okta simulator, checked exactly (see [`audit_through`]).
async fn okta_audited() -> (TestApp, OktaSim, CycleSummary) {
    let mut app = app().await;
    let okta = OktaSim::start_local(&app.sim, OktaOptions::default())
        .await
        .unwrap();
    let extra = okta_toml(&okta, &app);
    let first = audit_through(&mut app, &extra, Source::Okta).await;
    (app, okta, first)
}

#[tokio::test]
async fn okta_the_audit_lists_exactly_the_people_disabled_or_unknown_there() {
    okta_audited().await;
}

#[tokio::test]
async fn entra_the_audit_lists_exactly_the_people_disabled_deleted_or_unknown_there() {
    let mut app = app().await;
    let graph = GraphSim::start_local(&app.sim, GraphOptions::default())
        .await
        .unwrap();
    let secret = app.dir.path().join("entra-secret");
    std::fs::write(&secret, DEMO_GRAPH_CLIENT_SECRET).unwrap();
    let extra = format!(
        "[[directories]]\nname = \"entra\"\ntype = \"entra\"\ndomains = [\"{MAIN_DOMAIN}\"]\n\
         tenant_id = \"{DEMO_TENANT_ID}\"\nclient_id = \"{DEMO_GRAPH_CLIENT_ID}\"\n\
         client_secret_file = {:?}\ngraph_url = \"{url}\"\nlogin_url = \"{url}\"\n",
        secret.display().to_string(),
        url = graph.base_url(),
    );
    audit_through(&mut app, &extra, Source::Entra).await;
}

#[tokio::test]
async fn google_the_audit_lists_exactly_the_people_suspended_archived_deleted_or_unknown_there() {
    let mut app = app().await;
    let key = app.dir.path().join("google-sa.json");
    app.sim.write_google_service_account_key(&key).unwrap();
    let extra = format!(
        "[[directories]]\nname = \"google\"\ntype = \"google\"\ndomains = [\"{MAIN_DOMAIN}\"]\n\
         service_account_key_file = {:?}\nsubject = \"{}\"\napi_url = \"{}\"\n",
        key.display().to_string(),
        google_admin(),
        app.sim.google_url(),
    );
    audit_through(&mut app, &extra, Source::Google).await;
}

/// slapd loaded with the app's seeded directory, read over `url(slapd)` under `rule`.
async fn ldap_case(rule: LdapRule, ldaps: bool) -> (TestApp, Slapd, CycleSummary) {
    let mut app = app().await;
    let slapd = Slapd::start(&app.sim.snapshot_state());
    let url = if ldaps {
        &slapd.ldaps_url
    } else {
        &slapd.ldap_url
    };
    let extra = slapd.directory_toml("ldap", MAIN_DOMAIN, url, rule.toml());
    let summary = audit_through(&mut app, &extra, Source::Ldap(rule)).await;
    (app, slapd, summary)
}

#[tokio::test]
async fn ldaps_active_directory_the_audit_lists_exactly_the_people_disabled_or_unknown_there() {
    ldap_case(LdapRule::ActiveDirectory, true).await;
}

#[tokio::test]
async fn starttls_ppolicy_the_audit_lists_exactly_the_locked_people_or_unknown_there() {
    ldap_case(LdapRule::PwdAccountLockedTime, false).await;
}

#[tokio::test]
async fn ldaps_shadow_expire_the_audit_lists_exactly_the_expired_people_or_unknown_there() {
    ldap_case(LdapRule::ShadowExpire, true).await;
}

#[tokio::test]
async fn okta_down_leaves_the_directory_rules_not_evaluated_and_resolves_nothing() {
    let (mut app, okta, first) = okta_audited().await;
    okta.shutdown();
    okta.stopped().await;
    assert_down_resolves_nothing(&mut app, &directory_findings(&first), "okta").await;
}

#[tokio::test]
async fn slapd_down_leaves_the_directory_rules_not_evaluated_and_resolves_nothing() {
    let (mut app, mut slapd, first) = ldap_case(LdapRule::ActiveDirectory, true).await;
    slapd.stop();
    assert_down_resolves_nothing(&mut app, &directory_findings(&first), "ldap").await;
}

#[tokio::test]
async fn okta_a_member_removed_since_the_last_cycle_is_deprovisioned_there_and_their_keys_stay() {
    let (mut app, okta, _) = okta_audited().await;

    // Two people with active keys they created leave the organization: one already disabled in
    // Okta, one active there until now (Okta then deprovisions them).
    let (removed, keys) = app.sim.with_state(|s| {
        let directory = s.directory();
        let active = |email: &str| {
            let email = email.to_lowercase();
            directory
                .iter()
                .find(|e| e.email == email || e.aliases.contains(&email))
                .is_some_and(|e| e.state.is_active())
        };
        let keys = s.api_keys();
        let users = s.users();
        let key_of = |user: &serde_json::Value| {
            keys.iter()
                .find(|k| {
                    k["status"] == "active"
                        && k["principal"].is_null()
                        && k["created_by"]["id"] == user["id"]
                })
                .map(|k| text(&k["id"]))
        };
        let mut removed = HashSet::new();
        let mut their_keys = Vec::new();
        for was_active in [false, true] {
            let (user, key) = users
                .iter()
                .filter(|u| text(&u["email"]).ends_with(&format!("@{MAIN_DOMAIN}")))
                .filter(|u| active(&text(&u["email"])) == was_active)
                .find_map(|u| key_of(u).map(|k| (text(&u["id"]), k)))
                .expect("a member with a key");
            assert!(s.remove_user(&user));
            removed.insert(user);
            their_keys.push(key);
        }
        (removed, their_keys)
    });
    app.advance(Duration::hours(1));
    let extra = okta_toml(&okta, &app);
    let second = audit_through_with(&mut app, &extra, Source::Okta, &removed).await;
    let findings = directory_findings(&second);
    for key in keys {
        let finding = ("directory_departed".to_owned(), "api_key".to_owned(), key);
        assert!(findings.contains(&finding), "{finding:?}");
    }
    for user in &removed {
        assert!(!findings
            .iter()
            .any(|(_, kind, id)| kind == "member" && id == user));
    }
}
