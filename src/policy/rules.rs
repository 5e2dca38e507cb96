//! The rules themselves: each function turns the snapshot in a [`Context`] into findings.
//!
//! This module owns the decisions of every rule and the wording of its evidence. It must not
//! decide whether a rule runs (that is [`super::evaluate`]'s job, from the configuration and the
//! available inputs), must not drop exempted findings (they are listed with their reason), and,
//! like all of policy, must not do I/O.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// The maps looked up for every member and key: foldhash (seeded per process) rather than the
/// standard SipHash, which was a few per cent of a large audit.
type FastMap<K, V> = foldhash::HashMap<K, V>;
type FastSet<T> = foldhash::HashSet<T>;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::directory::{by_address, normalized, DirectoryRead, DirectoryView};
use super::glob::glob_match;
use super::usage::UsageView;
use super::{
    controls_for, Action, Finding, FormerMember, PolicyInput, RosterEntry, RuleId, SubjectKind,
    ASSIGNMENT_DRIFT, DEPARTED_DOMAINS, DIRECTORY_DEPARTED, DIRECTORY_UNKNOWN, DORMANT_KEYS,
    DORMANT_MEMBERS, EXCESS_ADMINS, KEY_HYGIENE, OFFBOARDING_ROSTER, ORPHANED_KEYS,
    PRIVILEGE_ESCALATION, STALE_INVITES, UNATTRIBUTED_KEYS,
};
use crate::config::{normalize_domain, ExemptionMatch, Severity};
use crate::org::{
    ApiKey, ApiKeyStatus, InviteStatus, KeyOwner, User, Workspace, WorkspaceMember, WorkspaceRole,
};
use crate::org::{DirectoryPerson, DirectoryStatus, OrgState};

/// How many emails an `excess_admins` finding lists before it says "and N more": enough to
/// recognise the people, short enough to stay one readable sentence.
const MAX_LISTED_ADMINS: usize = 10;

/// The input plus the indexes several rules share.
pub(super) struct Context<'a> {
    input: &'a PolicyInput<'a>,
    state: &'a OrgState,
    now: DateTime<Utc>,
    /// Exemptions and roster last days are whole days, compared with `now`'s UTC date.
    today: NaiveDate,
    members: FastMap<&'a str, &'a User>,
    /// The most recent sighting of each former member.
    former: FastMap<&'a str, &'a FormerMember>,
    workspaces: FastMap<&'a str, &'a Workspace>,
}

/// A person found by user id: a current member, or someone orgwarden saw leave.
enum Person<'a> {
    Current(&'a User),
    Former(&'a FormerMember),
}

impl Person<'_> {
    fn email(&self) -> &str {
        match self {
            Person::Current(user) => &user.email,
            Person::Former(former) => &former.email,
        }
    }

    fn describe(&self) -> String {
        match self {
            Person::Current(user) => format!("member {}", user.email),
            Person::Former(former) => format!(
                "former member {} (last seen {})",
                former.email,
                day(former.last_seen)
            ),
        }
    }
}

/// What a finding is about, for exemption matching: an email (a member's, an invite's or a key
/// owner's) and, for key findings, the key.
#[derive(Clone, Copy, Default)]
struct Target<'k> {
    email: Option<&'k str>,
    key: Option<&'k ApiKey>,
}

/// The parts of a finding a rule supplies; the rest comes from the rule id and configuration.
struct Draft<'k> {
    kind: SubjectKind,
    id: String,
    subject: String,
    evidence: String,
    action: Action,
    target: Target<'k>,
    workspace_id: Option<String>,
    user_id: Option<String>,
}

impl<'k> Draft<'k> {
    fn new(
        kind: SubjectKind,
        id: &str,
        subject: &str,
        evidence: String,
        action: Action,
    ) -> Draft<'k> {
        Draft {
            kind,
            id: id.to_owned(),
            subject: subject.to_owned(),
            evidence,
            action,
            target: Target::default(),
            workspace_id: None,
            user_id: None,
        }
    }

    /// A member to review, addressed by their email.
    fn member_review(id: &str, email: &'k str, evidence: String) -> Draft<'k> {
        Draft::new(SubjectKind::Member, id, email, evidence, Action::Review).email(Some(email))
    }

    fn email(mut self, email: Option<&'k str>) -> Draft<'k> {
        self.target.email = email;
        self
    }

    fn key(mut self, key: &'k ApiKey) -> Draft<'k> {
        self.target.key = Some(key);
        self
    }

    fn membership(mut self, membership: &WorkspaceMember) -> Draft<'k> {
        self.workspace_id = Some(membership.workspace_id.clone());
        self.user_id = Some(membership.user_id.clone());
        self
    }
}

impl<'a> Context<'a> {
    pub(super) fn new(input: &'a PolicyInput<'a>) -> Context<'a> {
        let state = input.state;
        let mut former: FastMap<&str, &FormerMember> = FastMap::default();
        for person in input.former_members {
            let newest = former
                .get(person.id.as_str())
                .is_none_or(|seen| seen.last_seen < person.last_seen);
            if newest {
                former.insert(&person.id, person);
            }
        }
        Context {
            input,
            state,
            now: input.now,
            today: input.now.date_naive(),
            members: state.members.iter().map(|m| (m.id.as_str(), m)).collect(),
            former,
            workspaces: state
                .workspaces
                .iter()
                .map(|w| (w.id.as_str(), w))
                .collect(),
        }
    }

    /// Looks a user id up among current members first, so that someone who left and came back
    /// counts as present.
    fn person(&self, user_id: &str) -> Option<Person<'a>> {
        if let Some(user) = self.members.get(user_id) {
            return Some(Person::Current(user));
        }
        self.former.get(user_id).map(|f| Person::Former(f))
    }

    /// The active keys with their owner.
    fn active_keys(&self) -> impl Iterator<Item = (&'a ApiKey, KeyOwner<'a>)> {
        self.state
            .api_keys
            .iter()
            .filter(|k| k.status == ApiKeyStatus::Active)
            .map(|k| (k, k.owner()))
    }

    /// The reason of the first exemption, in configuration order, that is still valid today and
    /// matches the target.
    fn exemption(&self, target: Target<'_>) -> Option<String> {
        self.input
            .exemptions
            .iter()
            .filter(|e| e.until.is_none_or(|last| self.today <= last))
            .find(|e| match &e.matches {
                ExemptionMatch::Email(email) => target
                    .email
                    .is_some_and(|t| t.trim().to_lowercase() == email.trim().to_lowercase()),
                ExemptionMatch::KeyId(id) => target.key.is_some_and(|k| k.id == *id),
                ExemptionMatch::KeyName(pattern) => {
                    target.key.is_some_and(|k| glob_match(pattern, &k.name))
                }
            })
            .map(|e| e.reason.clone())
    }

    fn finish(&self, rule: RuleId, severity: Severity, draft: Draft<'_>) -> Finding {
        Finding {
            rule,
            severity,
            subject_kind: draft.kind,
            subject_id: draft.id,
            subject: draft.subject,
            evidence: draft.evidence,
            action: draft.action,
            controls: controls_for(rule),
            exemption: self.exemption(draft.target),
            workspace_id: draft.workspace_id,
            user_id: draft.user_id,
        }
    }

    /// Where a key lives, for evidence.
    fn key_place(&self, key: &ApiKey) -> String {
        match &key.workspace_id {
            None => "in the Default Workspace".to_owned(),
            Some(id) => format!("in {}", self.workspace_label(id)),
        }
    }

    fn workspace_label(&self, id: &str) -> String {
        match self.workspaces.get(id) {
            Some(w) => format!("workspace {} ({id})", w.name),
            None => format!("workspace {id}"),
        }
    }

    fn is_archived(&self, workspace_id: &str) -> bool {
        self.workspaces
            .get(workspace_id)
            .is_some_and(|w| w.archived_at.is_some())
    }

    fn user_email(&self, user_id: &'a str) -> &'a str {
        self.members
            .get(user_id)
            .map_or(user_id, |user| user.email.as_str())
    }
}

// ---- stale_invites ------------------------------------------------------------------------------

pub(super) fn stale_invites(ctx: &Context<'_>) -> Vec<Finding> {
    let config = &ctx.input.rules.stale_invites;
    let max_days = config.max_pending_days;
    let limit = Duration::days(i64::from(max_days));
    let mut out = Vec::new();
    for invite in &ctx.state.invites {
        let base = format!("invited {} as {}", day(invite.invited_at), invite.role);
        let evidence = match invite.status {
            InviteStatus::Expired => format!(
                "{base}, expired {} and is still listed",
                day(invite.expires_at)
            ),
            // The API may not have flipped the status yet; expiry is what counts, and an
            // invite that expires exactly now can no longer be accepted.
            InviteStatus::Pending if invite.expires_at <= ctx.now => format!(
                "{base}, still pending although it expired {} ({})",
                day(invite.expires_at),
                ago(ctx.now, invite.expires_at)
            ),
            InviteStatus::Pending if ctx.now - invite.invited_at > limit => {
                let days = (ctx.now - invite.invited_at).num_days();
                // Whole days can round down to the limit itself; say "more than" rather than
                // print a number that looks within the limit.
                let pending = if days > i64::from(max_days) {
                    format!("pending for {days} days")
                } else {
                    format!("pending for more than {max_days} days")
                };
                format!(
                    "{base}, {pending} (limit {max_days}); expires {}",
                    day(invite.expires_at)
                )
            }
            // Accepted and deleted invites are history, and an unknown status is not ours
            // to judge.
            _ => continue,
        };
        let draft = Draft::new(
            SubjectKind::Invite,
            &invite.id,
            &invite.email,
            evidence,
            Action::DeleteInvite,
        )
        .email(Some(&invite.email));
        out.push(ctx.finish(STALE_INVITES, config.severity, draft));
    }
    out
}

// ---- departed_domains ---------------------------------------------------------------------------

/// The configured domain lists, normalised again here so that hand-built configurations behave
/// like loaded ones (normalising is idempotent).
struct DomainPolicy {
    departed: Vec<String>,
    allowed: Vec<String>,
    /// Email domains as written → their verdict. Normalising (IDNA) and matching are costly,
    /// and an organization has few distinct domains among many emails.
    verdicts: RefCell<FastMap<String, Option<String>>>,
}

impl DomainPolicy {
    fn new(departed: &[String], allowed: &[String]) -> DomainPolicy {
        let normalise = |list: &[String]| {
            list.iter()
                .map(|d| normalize_domain(d).unwrap_or_else(|| d.trim().to_lowercase()))
                .collect()
        };
        DomainPolicy {
            departed: normalise(departed),
            allowed: normalise(allowed),
            verdicts: RefCell::new(FastMap::default()),
        }
    }

    /// Why `email` breaks the domain policy, as a clause for the evidence; `None` when it does
    /// not. Worked out once per domain as written.
    fn verdict(&self, email: &str) -> Option<String> {
        let Some((_, raw)) = email.rsplit_once('@') else {
            return self.judge(None);
        };
        let mut verdicts = self.verdicts.borrow_mut();
        if let Some(known) = verdicts.get(raw) {
            return known.clone();
        }
        let verdict = self.judge(normalize_domain(raw).as_deref());
        verdicts.insert(raw.to_owned(), verdict.clone());
        verdict
    }

    /// The verdict on a normalised email domain (`None`: no readable domain).
    fn judge(&self, domain: Option<&str>) -> Option<String> {
        let Some(domain) = domain else {
            // Without a domain nothing can be departed, but nothing can be allowed either.
            return (!self.allowed.is_empty())
                .then(|| "the email has no readable domain while allowed_domains is set".into());
        };
        if let Some(departed) = self.departed.iter().find(|d| within(domain, d)) {
            return Some(if domain == *departed {
                format!("email domain {domain} is a departed domain")
            } else {
                format!("email domain {domain} is under departed domain {departed}")
            });
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| within(domain, a)) {
            return Some(format!("email domain {domain} is not in allowed_domains"));
        }
        None
    }
}

/// True when `domain` is `parent` or one of its subdomains; `notexample.com` is not within
/// `example.com` because the match must start at a label boundary.
fn within(domain: &str, parent: &str) -> bool {
    domain == parent
        || domain
            .strip_suffix(parent)
            .is_some_and(|head| head.ends_with('.'))
}

pub(super) fn departed_domains(ctx: &Context<'_>) -> Vec<Finding> {
    let config = &ctx.input.rules.departed_domains;
    let policy = DomainPolicy::new(&config.departed_domains, &config.allowed_domains);
    let mut out = Vec::new();

    for member in &ctx.state.members {
        let Some(reason) = policy.verdict(&member.email) else {
            continue;
        };
        let (action, evidence) = member_action(
            member,
            format!(
                "member since {} with role {}; {reason}",
                day(member.added_at),
                member.role
            ),
        );
        let draft = Draft::new(
            SubjectKind::Member,
            &member.id,
            &member.email,
            evidence,
            action,
        )
        .email(Some(&member.email));
        out.push(ctx.finish(DEPARTED_DOMAINS, config.severity, draft));
    }

    out.extend(pending_invites(
        ctx,
        DEPARTED_DOMAINS,
        config.severity,
        Action::DeleteInvite,
        |email| policy.verdict(email),
    ));

    for (key, owner) in ctx.active_keys() {
        // Only a person's key has a domain; an owner orgwarden never saw has no known email,
        // and orphaned_keys reports that key instead.
        let KeyOwner::User(owner_id) = owner else {
            continue;
        };
        let Some(person) = ctx.person(owner_id) else {
            continue;
        };
        let Some(reason) = policy.verdict(person.email()) else {
            continue;
        };
        let evidence = format!(
            "active key created {} {}, owned by {}; {reason}",
            day(key.created_at),
            ctx.key_place(key),
            person.describe()
        );
        let draft = Draft::new(
            SubjectKind::ApiKey,
            &key.id,
            &key.name,
            evidence,
            Action::DeactivateKey,
        )
        .email(Some(person.email()))
        .key(key);
        out.push(ctx.finish(DEPARTED_DOMAINS, config.severity, draft));
    }
    out
}

/// Removal is recommended for ordinary members only: the API refuses to remove admins, so for
/// them the recommendation is a review, and the evidence says why.
fn member_action(member: &User, evidence: String) -> (Action, String) {
    if member.role.is_admin() {
        (
            Action::Review,
            format!(
                "{evidence}; with role {} this member cannot be removed through \
                    the API, so review and demote first",
                member.role
            ),
        )
    } else {
        (Action::RemoveMember, evidence)
    }
}

// ---- offboarding_roster -------------------------------------------------------------------------

/// The roster entry that makes someone departed today, per lowercased email.
///
/// Only entries whose last day has passed (or that have none) count. When a person is listed more
/// than once, the latest last day wins, so that someone who came back after an earlier departure
/// is judged against the most recent one.
fn departed_people(entries: &[RosterEntry], today: NaiveDate) -> HashMap<String, &RosterEntry> {
    let mut gone: HashMap<String, &RosterEntry> = HashMap::new();
    for entry in entries {
        if entry.last_day.is_some_and(|last| last >= today) {
            continue;
        }
        let email = entry.email.trim().to_lowercase();
        let replace = gone
            .get(&email)
            .is_none_or(|seen| seen.last_day < entry.last_day);
        if replace {
            gone.insert(email, entry);
        }
    }
    gone
}

/// Why someone counts as departed, as a roster line or a directory says it.
pub(super) struct Departure {
    /// The last working day, when known: an invite or membership after it is a re-hire for a
    /// person to confirm, not left-over access.
    last_day: Option<NaiveDate>,
    /// The fact, worded to follow "after their" and "whose" (`last day 2026-01-02 per roster
    /// line 3`, `account was disabled in directory okta (SUSPENDED) on 2026-11-01`).
    says: String,
}

/// True when `since` (an invite or a membership) is after the person's last day: a re-hire in
/// progress, or a mistake; either way a person must confirm it.
fn came_back(since: DateTime<Utc>, entry: &Departure) -> bool {
    entry.last_day.is_some_and(|last| since.date_naive() > last)
}

/// The evidence for an invite or a membership that appeared after the person's last day.
fn after_last_day(what: &str, since: DateTime<Utc>, entry: &Departure) -> String {
    format!(
        "{what} on {}, after their last day on {}; confirm the re-hire or remove the person \
         from the roster",
        day(since),
        entry
            .last_day
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
    )
}

fn roster_says(entry: &RosterEntry) -> Departure {
    let says = match entry.last_day {
        Some(last) => format!(
            "last day {} per roster line {}",
            last.format("%Y-%m-%d"),
            entry.line
        ),
        None => format!("listed without a last day on roster line {}", entry.line),
    };
    Departure {
        last_day: entry.last_day,
        says,
    }
}

pub(super) fn offboarding_roster(ctx: &Context<'_>, entries: &[RosterEntry]) -> Vec<Finding> {
    let config = &ctx.input.rules.offboarding_roster;
    let gone: HashMap<String, Departure> = departed_people(entries, ctx.today)
        .into_iter()
        .map(|(email, entry)| (email, roster_says(entry)))
        .collect();
    departures(ctx, OFFBOARDING_ROSTER, config.severity, |email| {
        gone.get(&email.trim().to_lowercase())
    })
}

/// The findings of a departure rule (`offboarding_roster`, `directory_departed`): members (never
/// an admin removed: they get a review), their explicit workspace memberships, pending invites
/// and active keys of people `lookup` says have left.
fn departures<'d>(
    ctx: &Context<'_>,
    rule: RuleId,
    severity: Severity,
    lookup: impl Fn(&str) -> Option<&'d Departure>,
) -> Vec<Finding> {
    let mut out = Vec::new();

    // Members added after their last day are a finding for a person to confirm (never acted on);
    // they are remembered so that what they got since (memberships, keys created after the last
    // day) is not reported as left over. Their earlier keys still are.
    // Looked up by every membership and key owner, never iterated.
    let mut returned: FastMap<&str, &Departure> = FastMap::default();
    let mut departed_members: FastMap<&str, (&User, &Departure)> = FastMap::default();
    for member in &ctx.state.members {
        let Some(entry) = lookup(&member.email) else {
            continue;
        };
        if came_back(member.added_at, entry) {
            returned.insert(&member.id, entry);
            let draft = Draft::new(
                SubjectKind::Member,
                &member.id,
                &member.email,
                after_last_day("re-added as a member", member.added_at, entry),
                Action::Review,
            )
            .email(Some(&member.email));
            out.push(ctx.finish(rule, severity, draft));
            continue;
        }
        departed_members.insert(&member.id, (member, entry));
        let (action, evidence) = member_action(
            member,
            format!(
                "still a member (role {}, since {}) after their {}",
                member.role,
                day(member.added_at),
                entry.says
            ),
        );
        let draft = Draft::new(
            SubjectKind::Member,
            &member.id,
            &member.email,
            evidence,
            action,
        )
        .email(Some(&member.email));
        out.push(ctx.finish(rule, severity, draft));
    }

    for membership in &ctx.state.workspace_members {
        let Some((member, entry)) = departed_members.get(membership.user_id.as_str()) else {
            continue;
        };
        // An archived workspace grants nothing and cannot be changed any more.
        if ctx.is_archived(&membership.workspace_id) {
            continue;
        }
        let evidence = format!(
            "{} in {} after their {}",
            membership.workspace_role,
            ctx.workspace_label(&membership.workspace_id),
            entry.says
        );
        let draft = Draft::new(
            SubjectKind::WorkspaceMember,
            &format!("{}/{}", membership.workspace_id, membership.user_id),
            &member.email,
            evidence,
            Action::RemoveWorkspaceMember,
        )
        .email(Some(&member.email))
        .membership(membership);
        out.push(ctx.finish(rule, severity, draft));
    }

    for invite in &ctx.state.invites {
        if invite.status != InviteStatus::Pending {
            continue;
        }
        let Some(entry) = lookup(&invite.email) else {
            continue;
        };
        // An invite sent after the last day may be a re-hire: a person must confirm it.
        if came_back(invite.invited_at, entry) {
            let draft = Draft::new(
                SubjectKind::Invite,
                &invite.id,
                &invite.email,
                after_last_day("re-invited", invite.invited_at, entry),
                Action::Review,
            )
            .email(Some(&invite.email));
            out.push(ctx.finish(rule, severity, draft));
            continue;
        }
        let evidence = format!(
            "pending invite sent {} as {} for someone whose {}",
            day(invite.invited_at),
            invite.role,
            entry.says
        );
        let draft = Draft::new(
            SubjectKind::Invite,
            &invite.id,
            &invite.email,
            evidence,
            Action::DeleteInvite,
        )
        .email(Some(&invite.email));
        out.push(ctx.finish(rule, severity, draft));
    }

    for (key, owner) in ctx.active_keys() {
        let KeyOwner::User(owner_id) = owner else {
            continue;
        };
        // A key made after a returned member's last day belongs to their new stint.
        if returned
            .get(owner_id)
            .is_some_and(|entry| came_back(key.created_at, entry))
        {
            continue;
        }
        let Some(person) = ctx.person(owner_id) else {
            continue;
        };
        let Some(entry) = lookup(person.email()) else {
            continue;
        };
        let evidence = format!(
            "active key created {} {}, owned by {} whose {}",
            day(key.created_at),
            ctx.key_place(key),
            person.describe(),
            entry.says
        );
        let draft = Draft::new(
            SubjectKind::ApiKey,
            &key.id,
            &key.name,
            evidence,
            Action::DeactivateKey,
        )
        .email(Some(person.email()))
        .key(key);
        out.push(ctx.finish(rule, severity, draft));
    }
    out
}

// ---- directory_departed, directory_unknown, assignment_drift -----------------------------------

/// The directory sources indexed by address, each email judged by the first source (in
/// configuration order) authoritative for its domain. Built once per evaluation; the addresses
/// are borrowed from the reads where already lower-cased.
pub(super) struct Directories<'a> {
    views: Vec<DirectoryIndex<'a>>,
}

/// One source with its read's people by address, whether it lists everyone (computed once, not
/// per unknown address) and its lower-cased app assignments.
struct DirectoryIndex<'a> {
    view: &'a DirectoryView,
    by_address: Option<FastMap<Cow<'a, str>, &'a DirectoryPerson>>,
    lists_everyone: bool,
    /// The emails assigned to the Claude application: a set, so that judging every member is
    /// not members × assignments comparisons; `None` when the read has no assignments.
    assigned: Option<FastSet<Cow<'a, str>>>,
}

/// What the authoritative source says of one address.
enum Verdict<'a> {
    /// No source is authoritative for the domain, or that source has no read.
    NotJudged,
    /// The source lists no one at this address; `lists_everyone` as [`DirectoryView`] says.
    Unknown(&'a DirectoryView, &'a DirectoryRead, bool),
    /// The source lists this person; their assignment to the Claude application as
    /// [`Directories::assigned`] says.
    Listed(
        &'a DirectoryView,
        &'a DirectoryRead,
        &'a DirectoryPerson,
        &'a DirectoryIndex<'a>,
    ),
}

impl<'a> Directories<'a> {
    pub(super) fn new(views: &'a [DirectoryView]) -> Directories<'a> {
        Directories {
            views: views
                .iter()
                .map(|view| {
                    let read = view.read.as_ref().ok();
                    DirectoryIndex {
                        view,
                        by_address: read.map(|r| by_address(&r.listing)),
                        lists_everyone: view.lists_everyone(),
                        assigned: read.and_then(|r| {
                            let list = r.listing.assigned.as_ref()?;
                            Some(list.iter().map(|e| normalized(e)).collect())
                        }),
                    }
                })
                .collect(),
        }
    }

    /// Whether the person is assigned to the Claude application by any of their addresses;
    /// `None` when the read has no assignments.
    fn assigned(index: &DirectoryIndex<'_>, person: &DirectoryPerson) -> Option<bool> {
        let set = index.assigned.as_ref()?;
        Some(
            std::iter::once(&person.email)
                .chain(&person.aliases)
                .any(|a| set.contains(&*normalized(a))),
        )
    }

    /// The reasons the directory rules are partial: one per source without a read.
    pub(super) fn failures(&self) -> Option<String> {
        let reasons: Vec<String> = self.views.iter().filter_map(|v| v.view.failure()).collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// What the authoritative source says of `email` (any case, surrounding spaces ignored).
    fn judge(&self, email: &str) -> Verdict<'_> {
        let email = normalized(email);
        let Some((_, domain)) = email.rsplit_once('@') else {
            return Verdict::NotJudged;
        };
        let Some(index) = self.views.iter().find(|v| v.view.covers(domain)) else {
            return Verdict::NotJudged;
        };
        let view = index.view;
        let (Ok(read), Some(by_address)) = (&view.read, &index.by_address) else {
            return Verdict::NotJudged;
        };
        match by_address.get(&*email) {
            Some(&person) => Verdict::Listed(view, read, person, index),
            None => Verdict::Unknown(view, read, index.lists_everyone),
        }
    }
}

/// "since D" from the directory's own time, else from when orgwarden first saw it.
fn directory_since(read: &DirectoryRead, person: &DirectoryPerson) -> String {
    match (person.status_since, read.seen_since.get(&person.id)) {
        (Some(since), _) => format!("on {}", day(since)),
        (None, Some(seen)) => format!("(so since orgwarden's read of {})", day(*seen)),
        (None, None) => format!("(as read {})", day(read.read_at)),
    }
}

pub(super) fn directory_departed(ctx: &Context<'_>, dirs: &Directories<'_>) -> Vec<Finding> {
    let config = &ctx.input.rules.directory_departed;
    // Worded once per departed person; a person is looked up by each of their addresses (and
    // every member, membership, invite and key owner by theirs).
    let mut gone: FastMap<String, Departure> = FastMap::default();
    let mut emails: Vec<&str> = ctx.state.members.iter().map(|m| m.email.as_str()).collect();
    emails.extend(ctx.state.invites.iter().map(|i| i.email.as_str()));
    emails.extend(ctx.input.former_members.iter().map(|f| f.email.as_str()));
    for email in emails {
        let key = normalized(email);
        if gone.contains_key(&*key) {
            continue;
        }
        let Verdict::Listed(view, read, person, _) = dirs.judge(&key) else {
            continue;
        };
        // A roster's last day still ahead is not a departure yet.
        if person.status_since.is_some_and(|since| since > ctx.now) {
            continue;
        }
        let says = match &person.status {
            DirectoryStatus::Active => continue,
            DirectoryStatus::Disabled(word) => format!(
                "account was disabled in directory {} ({word}) {}",
                view.name,
                directory_since(read, person)
            ),
            DirectoryStatus::Deleted => format!(
                "account was deleted from directory {} {}",
                view.name,
                directory_since(read, person)
            ),
        };
        gone.insert(
            key.into_owned(),
            Departure {
                last_day: None,
                says,
            },
        );
    }
    departures(ctx, DIRECTORY_DEPARTED, config.severity, |email| {
        gone.get(&*normalized(email))
    })
}

pub(super) fn directory_unknown(ctx: &Context<'_>, dirs: &Directories<'_>) -> Vec<Finding> {
    let config = &ctx.input.rules.directory_unknown;
    let unknown = |email: &str| match dirs.judge(email) {
        Verdict::Unknown(view, read, true) => Some(format!(
            "directory {} is authoritative for its domain and has no account for it (read {})",
            view.name,
            day(read.read_at)
        )),
        _ => None,
    };
    let mut out = Vec::new();
    for member in &ctx.state.members {
        let Some(why) = unknown(&member.email) else {
            continue;
        };
        let evidence = format!(
            "member (role {}, since {}); {why}",
            member.role,
            day(member.added_at)
        );
        let draft = Draft::member_review(&member.id, &member.email, evidence);
        out.push(ctx.finish(DIRECTORY_UNKNOWN, config.severity, draft));
    }
    out.extend(pending_invites(
        ctx,
        DIRECTORY_UNKNOWN,
        config.severity,
        Action::Review,
        unknown,
    ));
    out
}

/// The findings for pending invites whose email `verdict` gives a reason for (the evidence's
/// last clause).
fn pending_invites(
    ctx: &Context<'_>,
    rule: RuleId,
    severity: Severity,
    action: Action,
    verdict: impl Fn(&str) -> Option<String>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for invite in &ctx.state.invites {
        if invite.status != InviteStatus::Pending {
            continue;
        }
        let Some(reason) = verdict(&invite.email) else {
            continue;
        };
        let evidence = format!(
            "pending invite sent {} as {}; {reason}",
            day(invite.invited_at),
            invite.role
        );
        let draft = Draft::new(
            SubjectKind::Invite,
            &invite.id,
            &invite.email,
            evidence,
            action,
        )
        .email(Some(&invite.email));
        out.push(ctx.finish(rule, severity, draft));
    }
    out
}

pub(super) fn assignment_drift(ctx: &Context<'_>, dirs: &Directories<'_>) -> Vec<Finding> {
    let config = &ctx.input.rules.assignment_drift;
    let mut out = Vec::new();
    for member in &ctx.state.members {
        let Verdict::Listed(view, _, person, index) = dirs.judge(&member.email) else {
            continue;
        };
        if person.status != DirectoryStatus::Active
            || Directories::assigned(index, person) != Some(false)
        {
            continue;
        }
        let evidence = format!(
            "member (role {}, since {}) is active in directory {} but not assigned to the Claude \
             application there: deprovisioning in the identity provider will not remove them",
            member.role,
            day(member.added_at),
            view.name
        );
        let draft = Draft::member_review(&member.id, &member.email, evidence);
        out.push(ctx.finish(ASSIGNMENT_DRIFT, config.severity, draft));
    }
    let current: FastSet<Cow<'_, str>> = ctx
        .state
        .members
        .iter()
        .map(|m| normalized(&m.email))
        .collect();
    let mut former: Vec<&FormerMember> = ctx.former.values().copied().collect();
    former.sort_by(|a, b| a.id.cmp(&b.id));
    for person_left in former {
        if ctx.members.contains_key(person_left.id.as_str())
            || current.contains(&*normalized(&person_left.email))
        {
            continue;
        }
        let Verdict::Listed(view, _, person, index) = dirs.judge(&person_left.email) else {
            continue;
        };
        if person.status != DirectoryStatus::Active
            || Directories::assigned(index, person) != Some(true)
        {
            continue;
        }
        let evidence = format!(
            "removed from the organization (last seen {}) but still active and assigned to the \
             Claude application in directory {}: the next sync will provision them again",
            day(person_left.last_seen),
            view.name
        );
        let draft = Draft::member_review(&person_left.id, &person_left.email, evidence);
        out.push(ctx.finish(ASSIGNMENT_DRIFT, config.severity, draft));
    }
    out
}

// ---- orphaned_keys and unattributed_keys --------------------------------------------------------

pub(super) fn orphaned_keys(ctx: &Context<'_>) -> Vec<Finding> {
    let config = &ctx.input.rules.orphaned_keys;
    let mut out = Vec::new();
    for (key, owner) in ctx.active_keys() {
        // Service-account keys outlive people by design, and a member who left and came back
        // is a member: neither is orphaned.
        let KeyOwner::User(owner_id) = owner else {
            continue;
        };
        if ctx.members.contains_key(owner_id) {
            continue;
        }
        let former = ctx.former.get(owner_id).copied();
        let who = match former {
            Some(f) => format!(
                "owner {} left {} (last seen {})",
                f.email,
                ago(ctx.now, f.last_seen),
                day(f.last_seen)
            ),
            None => format!("owner {owner_id} is not a member and was never seen by orgwarden"),
        };
        let evidence = format!(
            "active key created {} {}; {who}",
            day(key.created_at),
            ctx.key_place(key)
        );
        let draft = Draft::new(
            SubjectKind::ApiKey,
            &key.id,
            &key.name,
            evidence,
            Action::DeactivateKey,
        )
        .email(former.map(|f| f.email.as_str()))
        .key(key);
        out.push(ctx.finish(ORPHANED_KEYS, config.severity, draft));
    }
    out
}

pub(super) fn unattributed_keys(ctx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (key, owner) in ctx.active_keys() {
        if owner != KeyOwner::Unattributed {
            continue;
        }
        let evidence = format!(
            "active key created {} {} names neither a principal nor a \
                creator, so no person answers for it",
            day(key.created_at),
            ctx.key_place(key)
        );
        let draft = Draft::new(
            SubjectKind::ApiKey,
            &key.id,
            &key.name,
            evidence,
            Action::Review,
        )
        .key(key);
        // A fixed, low severity: an unattributed key is a bookkeeping gap, not evidence that
        // anyone left.
        out.push(ctx.finish(UNATTRIBUTED_KEYS, Severity::Low, draft));
    }
    out
}

// ---- excess_admins ------------------------------------------------------------------------------

/// `a, b, c and 4 more`, in the order given.
fn listing(items: &[String]) -> String {
    let shown = items.len().min(MAX_LISTED_ADMINS);
    let mut text = items[..shown].join(", ");
    if items.len() > shown {
        text.push_str(&format!(" and {} more", items.len() - shown));
    }
    text
}

pub(super) fn excess_admins(ctx: &Context<'_>) -> Vec<Finding> {
    let config = &ctx.input.rules.excess_admins;
    let mut out = Vec::new();

    let mut admins: Vec<String> = ctx
        .state
        .members
        .iter()
        .filter(|m| m.role.is_admin())
        .map(|m| format!("{} ({})", m.email, m.role))
        .collect();
    admins.sort();
    if admins.len() > config.max_admins as usize {
        let org = &ctx.state.organization;
        let evidence = format!(
            "{} where the limit is {}: {}",
            plural(admins.len(), "organization admin", "organization admins"),
            config.max_admins,
            listing(&admins)
        );
        // Organization-level findings match no exemption: an exemption names one person or key,
        // and the count is about all of them.
        let draft = Draft::new(
            SubjectKind::Organization,
            &org.id,
            &org.name,
            evidence,
            Action::Review,
        );
        out.push(ctx.finish(EXCESS_ADMINS, config.severity, draft));
    }

    // Org admins are workspace admins everywhere automatically, so only explicit grants to
    // other members measure how a workspace hands out admin rights.
    let mut explicit: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for membership in &ctx.state.workspace_members {
        if membership.workspace_role != WorkspaceRole::WorkspaceAdmin {
            continue;
        }
        let org_admin = ctx
            .members
            .get(membership.user_id.as_str())
            .is_some_and(|m| m.role.is_admin());
        if !org_admin {
            explicit
                .entry(&membership.workspace_id)
                .or_default()
                .push(ctx.user_email(&membership.user_id).to_owned());
        }
    }
    for workspace in &ctx.state.workspaces {
        if workspace.archived_at.is_some() {
            continue;
        }
        let Some(emails) = explicit.get_mut(workspace.id.as_str()) else {
            continue;
        };
        if emails.len() <= config.max_workspace_admins as usize {
            continue;
        }
        emails.sort();
        let evidence = format!(
            "{} in workspace {} where the limit is {}: {}",
            plural(
                emails.len(),
                "explicit workspace_admin member",
                "explicit workspace_admin members"
            ),
            workspace.name,
            config.max_workspace_admins,
            listing(emails)
        );
        let draft = Draft::new(
            SubjectKind::Workspace,
            &workspace.id,
            &workspace.name,
            evidence,
            Action::Review,
        );
        out.push(ctx.finish(EXCESS_ADMINS, config.severity, draft));
    }
    out
}

// ---- privilege_escalation -----------------------------------------------------------------------

pub(super) fn privilege_escalation(ctx: &Context<'_>, previous: &OrgState) -> Vec<Finding> {
    let config = &ctx.input.rules.privilege_escalation;
    let since = day(previous.taken_at);
    let before: HashMap<&str, &User> = previous
        .members
        .iter()
        .map(|m| (m.id.as_str(), m))
        .collect();
    let mut out = Vec::new();

    for member in &ctx.state.members {
        if !member.role.is_admin() {
            continue;
        }
        // A move between admin-like roles (admin to owner) is not an escalation into admin.
        let evidence = match before.get(member.id.as_str()) {
            Some(old) if old.role.is_admin() => continue,
            Some(old) => format!(
                "role changed from {} to {} since the snapshot of {since}",
                old.role, member.role
            ),
            None => format!(
                "joined {} directly as {}, after the snapshot of {since}",
                day(member.added_at),
                member.role
            ),
        };
        let draft = Draft::member_review(&member.id, &member.email, evidence);
        out.push(ctx.finish(PRIVILEGE_ESCALATION, config.severity, draft));
    }

    let before: HashMap<(&str, &str), &WorkspaceMember> = previous
        .workspace_members
        .iter()
        .map(|m| ((m.workspace_id.as_str(), m.user_id.as_str()), m))
        .collect();
    for membership in &ctx.state.workspace_members {
        if membership.workspace_role != WorkspaceRole::WorkspaceAdmin {
            continue;
        }
        // Org admins hold workspace_admin everywhere; their promotion is reported once, above.
        let member = ctx.members.get(membership.user_id.as_str()).copied();
        if member.is_some_and(|m| m.role.is_admin()) {
            continue;
        }
        if ctx.is_archived(&membership.workspace_id) {
            continue;
        }
        let place = ctx.workspace_label(&membership.workspace_id);
        let key = (
            membership.workspace_id.as_str(),
            membership.user_id.as_str(),
        );
        let evidence = match before.get(&key) {
            Some(old) if old.workspace_role == WorkspaceRole::WorkspaceAdmin => continue,
            Some(old) => format!(
                "workspace role in {place} changed from {} to workspace_admin \
                    since the snapshot of {since}",
                old.workspace_role
            ),
            None => format!("added to {place} as workspace_admin after the snapshot of {since}"),
        };
        let email = member.map(|m| m.email.as_str());
        let draft = Draft::new(
            SubjectKind::WorkspaceMember,
            &format!("{}/{}", membership.workspace_id, membership.user_id),
            email.unwrap_or(&membership.user_id),
            evidence,
            Action::Review,
        )
        .email(email)
        .membership(membership);
        out.push(ctx.finish(PRIVILEGE_ESCALATION, config.severity, draft));
    }
    out
}

// ---- dormant_keys, dormant_members and key_hygiene ---------------------------------------------

/// Keys the rules of unused access judge: active, and not past their `expires_at` (such a key
/// no longer works, whatever its status says).
fn working_keys<'c, 'a>(
    ctx: &'c Context<'a>,
) -> impl Iterator<Item = (&'a ApiKey, KeyOwner<'a>)> + 'c {
    ctx.active_keys()
        .filter(|(k, _)| k.expires_at.is_none_or(|at| at > ctx.now))
}

/// The day after which any use means "not idle": `today - max_idle_days`. Used on that day is
/// exactly `max_idle_days` ago, which is not more than the limit.
fn idle_cutoff(ctx: &Context<'_>, max_idle_days: u32) -> NaiveDate {
    ctx.today - Duration::days(i64::from(max_idle_days))
}

/// How long without use, in words, for something that existed since `since` and was last used
/// on `last` (if ever within the data): "last used on DATE (N days ago)", "not used since it was
/// created on DATE" (`origin` names the event), or "not used since at least DATE" when `since`
/// is before the data begins.
fn idle_since(
    ctx: &Context<'_>,
    usage: &UsageView,
    last: Option<NaiveDate>,
    since: DateTime<Utc>,
    what: &str,
    origin: &str,
) -> String {
    let date = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    match (last, usage.covered_from) {
        (Some(last), _) => format!(
            "last {what} on {} ({})",
            date(last),
            days_ago((ctx.today - last).num_days())
        ),
        (None, Some(from)) if since.date_naive() < from => {
            format!(
                "not {what} since at least {}, when the usage data begins",
                date(from)
            )
        }
        (None, _) => format!("not {what} since {origin} on {}", day(since)),
    }
}

/// The person who owns `key`, if it is a person's and orgwarden knows them.
fn key_person<'a>(ctx: &Context<'a>, key: &'a ApiKey) -> Option<Person<'a>> {
    match key.owner() {
        KeyOwner::User(id) => ctx.person(id),
        _ => None,
    }
}

/// A finding about `key`, which exemptions match by the key and by its owner's email.
fn key_draft<'k>(
    key: &'k ApiKey,
    owner: Option<&'k Person<'_>>,
    evidence: String,
    action: Action,
) -> Draft<'k> {
    Draft::new(SubjectKind::ApiKey, &key.id, &key.name, evidence, action)
        .email(owner.map(Person::email))
        .key(key)
}

pub(super) fn dormant_keys(ctx: &Context<'_>, usage: &UsageView) -> Vec<Finding> {
    let config = &ctx.input.rules.dormant_keys;
    let limit = config.max_idle_days;
    let cutoff = idle_cutoff(ctx, limit);
    let mut out = Vec::new();
    for (key, owner) in working_keys(ctx) {
        // A key younger than the limit cannot have been idle that long.
        if ctx.now - key.created_at <= Duration::days(i64::from(limit)) {
            continue;
        }
        let last = usage.key_last_used.get(&key.id).copied();
        if last.is_some_and(|last| last >= cutoff) {
            continue;
        }
        let person = key_person(ctx, key);
        let owned = match (&person, owner) {
            (Some(person), _) => format!(", owned by {}", person.describe()),
            (None, KeyOwner::NonPerson) => ", a service-account key".to_owned(),
            _ => String::new(),
        };
        let evidence = format!(
            "active key created {} {}{owned}; {} (limit {limit} days)",
            day(key.created_at),
            ctx.key_place(key),
            idle_since(ctx, usage, last, key.created_at, "used", "it was created"),
        );
        let draft = key_draft(key, person.as_ref(), evidence, Action::DeactivateKey);
        out.push(ctx.finish(DORMANT_KEYS, config.severity, draft));
    }
    out
}

pub(super) fn dormant_members(ctx: &Context<'_>, usage: &UsageView) -> Vec<Finding> {
    let config = &ctx.input.rules.dormant_members;
    let limit = config.max_idle_days;
    let cutoff = idle_cutoff(ctx, limit);

    // Calls with a person's own keys are theirs even where the report does not attribute them
    // to the account; any key counts, a since deactivated one too.
    let mut via_keys: HashMap<&str, NaiveDate> = HashMap::new();
    for key in &ctx.state.api_keys {
        let (KeyOwner::User(owner), Some(&used)) = (key.owner(), usage.key_last_used.get(&key.id))
        else {
            continue;
        };
        let latest = via_keys.entry(owner).or_insert(used);
        *latest = (*latest).max(used);
    }

    let mut out = Vec::new();
    for member in &ctx.state.members {
        if ctx.now - member.added_at <= Duration::days(i64::from(limit)) {
            continue;
        }
        let api = [
            usage.account_last_api.get(&member.id).copied(),
            via_keys.get(member.id.as_str()).copied(),
        ]
        .into_iter()
        .flatten()
        .max();
        let code = usage
            .claude_code_last_active
            .get(&member.email.trim().to_lowercase())
            .copied();
        let last = api.max(code);
        if last.is_some_and(|last| last >= cutoff) {
            continue;
        }
        let evidence = format!(
            "member since {} with role {}; {} (limit {limit} days); a seat nobody uses",
            day(member.added_at),
            member.role,
            idle_since(
                ctx,
                usage,
                last,
                member.added_at,
                "active in the API or Claude Code",
                "they joined"
            ),
        );
        let draft = Draft::member_review(&member.id, &member.email, evidence);
        out.push(ctx.finish(DORMANT_MEMBERS, config.severity, draft));
    }
    out
}

pub(super) fn key_hygiene(ctx: &Context<'_>) -> Vec<Finding> {
    let config = &ctx.input.rules.key_hygiene;
    let limit = config.max_key_age_days;
    let mut out = Vec::new();
    for (key, _) in working_keys(ctx) {
        let mut reasons = Vec::new();
        let age = ctx.now - key.created_at;
        if key.expires_at.is_none() && age > Duration::days(i64::from(limit)) {
            reasons.push(format!(
                "never expires and is {} old (limit {limit} days)",
                plural(usize::try_from(age.num_days()).unwrap_or(0), "day", "days")
            ));
        }
        if config.flag_org_scoped && key.scope.as_ref().is_some_and(|s| s.is_organization()) {
            reasons.push("is organization-scoped, so it reaches every workspace".to_owned());
        }
        if reasons.is_empty() {
            continue;
        }
        let person = key_person(ctx, key);
        let evidence = format!(
            "active key created {} {}: {}",
            day(key.created_at),
            ctx.key_place(key),
            reasons.join(", and ")
        );
        let draft = key_draft(key, person.as_ref(), evidence, Action::Review);
        out.push(ctx.finish(KEY_HYGIENE, config.severity, draft));
    }
    out
}

// ---- Wording helpers ----------------------------------------------------------------------------

fn day(at: DateTime<Utc>) -> String {
    // `NaiveDate`'s `Display` writes `%Y-%m-%d` field by field, without parsing a format string
    // for each of the thousands of findings that name a day.
    at.date_naive().to_string()
}

/// "1 admin", "2 admins".
fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// "today", "1 day ago", "40 days ago".
fn days_ago(days: i64) -> String {
    match days {
        days if days < 1 => "today".to_owned(),
        1 => "1 day ago".to_owned(),
        days => format!("{days} days ago"),
    }
}

/// "about 40 days ago", in whole days, for evidence.
fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    match (now - then).num_days() {
        days if days < 1 => "less than a day ago".to_owned(),
        1 => "about 1 day ago".to_owned(),
        days => format!("about {days} days ago"),
    }
}

#[cfg(test)]
mod wording_tests {
    use chrono::{TimeZone, Utc};

    #[test]
    fn a_day_is_written_as_the_format_string_would() {
        for (y, m, d, h) in [
            (2026, 12, 2, 23),
            (2026, 1, 1, 0),
            (1999, 9, 30, 12),
            (33, 3, 3, 3),
            (9999, 12, 31, 23),
        ] {
            let at = Utc.with_ymd_and_hms(y, m, d, h, 59, 59).unwrap();
            assert_eq!(super::day(at), at.format("%Y-%m-%d").to_string());
        }
    }
}
