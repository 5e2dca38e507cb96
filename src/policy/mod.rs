//! Policy: the pure evaluation of one organization snapshot into findings.
//!
//! This module owns the audit rules (which objects are findings, with what severity, evidence,
//! recommended action and compliance controls), the exemptions that annotate findings, and the
//! parsing of the offboarding roster's text. [`evaluate`] is the single entry point.
//!
//! It must not do I/O of any kind: no files, network, database, clock or environment. Everything
//! it needs, `now` included, arrives through [`PolicyInput`], so the same input always gives the
//! same [`Evaluation`] and every rule can be tested with hand-built states. It also must not act:
//! an [`Action`] is only a recommendation, and whether it is carried out is for the remediation
//! module to decide.

pub mod directory;
pub mod exemption;
mod glob;
pub mod records;
pub use records::{ActionRecord, ActionStatus, FindingRecord, FindingStatus};
mod roster;
mod rules;
pub mod severity;
#[cfg(test)]
mod tests;
pub mod usage;

use chrono::{DateTime, Utc};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::config::{Exemption, RulesConfig, Severity};
use crate::org::OrgState;
use usage::UsageView;

pub use directory::{DirectoryRead, DirectoryView};
pub use glob::glob_match;
pub use roster::{parse_roster, RosterEntry, RosterError};

/// A rule id: what a finding is about. The serde names are the stored and JSON spelling, so
/// adding a rule fails to compile until every `match` that must know it handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleId {
    /// Pending invites too old, and expired invites still listed.
    StaleInvites,
    /// Members, invites and keys of departed (or not allowed) email domains.
    DepartedDomains,
    /// People on the offboarding roster who still have access.
    OffboardingRoster,
    /// Active keys whose owner is no longer a member.
    OrphanedKeys,
    /// Active keys that name no owner at all; governed by the `orphaned_keys` configuration.
    UnattributedKeys,
    /// More organization or workspace admins than allowed.
    ExcessAdmins,
    /// Members who became admins since the previous snapshot.
    PrivilegeEscalation,
    /// Active keys nobody has used for `max_idle_days` (needs usage data).
    DormantKeys,
    /// Members with neither API usage nor Claude Code activity for `max_idle_days` (needs usage
    /// data).
    DormantMembers,
    /// Active keys that never expire and are old, and organization-scoped keys.
    KeyHygiene,
    /// Access left to people disabled, suspended or deleted in their authoritative directory.
    DirectoryDeparted,
    /// Members and invites in a directory's domains that it has no account for.
    DirectoryUnknown,
    /// Members not assigned to the Claude application in the identity provider, and removed
    /// members still assigned there.
    AssignmentDrift,
    /// Raised by remediation, not by [`evaluate`]: a safety guard stopped automatic cleanup.
    RemediationGuard,
}

impl RuleId {
    /// Every rule id, the ones [`evaluate`] emits first in the order [`Evaluation::rules`] lists
    /// them, then `remediation_guard`.
    pub const ALL: [RuleId; 14] = [
        RuleId::StaleInvites,
        RuleId::DepartedDomains,
        RuleId::OffboardingRoster,
        RuleId::OrphanedKeys,
        RuleId::UnattributedKeys,
        RuleId::ExcessAdmins,
        RuleId::PrivilegeEscalation,
        RuleId::DormantKeys,
        RuleId::DormantMembers,
        RuleId::KeyHygiene,
        RuleId::DirectoryDeparted,
        RuleId::DirectoryUnknown,
        RuleId::AssignmentDrift,
        RuleId::RemediationGuard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::StaleInvites => "stale_invites",
            RuleId::DepartedDomains => "departed_domains",
            RuleId::OffboardingRoster => "offboarding_roster",
            RuleId::OrphanedKeys => "orphaned_keys",
            RuleId::UnattributedKeys => "unattributed_keys",
            RuleId::ExcessAdmins => "excess_admins",
            RuleId::PrivilegeEscalation => "privilege_escalation",
            RuleId::DormantKeys => "dormant_keys",
            RuleId::DormantMembers => "dormant_members",
            RuleId::KeyHygiene => "key_hygiene",
            RuleId::DirectoryDeparted => "directory_departed",
            RuleId::DirectoryUnknown => "directory_unknown",
            RuleId::AssignmentDrift => "assignment_drift",
            RuleId::RemediationGuard => "remediation_guard",
        }
    }

    /// The rule with this stored spelling (`None` for one this version does not know, e.g. a
    /// database written by a newer orgwarden).
    pub fn parse(text: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|rule| rule.as_str() == text)
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<RuleId> for str {
    fn eq(&self, rule: &RuleId) -> bool {
        self == rule.as_str()
    }
}

impl PartialEq<RuleId> for String {
    fn eq(&self, rule: &RuleId) -> bool {
        self.as_str() == rule.as_str()
    }
}

pub const STALE_INVITES: RuleId = RuleId::StaleInvites;
pub const DEPARTED_DOMAINS: RuleId = RuleId::DepartedDomains;
pub const OFFBOARDING_ROSTER: RuleId = RuleId::OffboardingRoster;
pub const ORPHANED_KEYS: RuleId = RuleId::OrphanedKeys;
pub const UNATTRIBUTED_KEYS: RuleId = RuleId::UnattributedKeys;
pub const EXCESS_ADMINS: RuleId = RuleId::ExcessAdmins;
pub const PRIVILEGE_ESCALATION: RuleId = RuleId::PrivilegeEscalation;
pub const DORMANT_KEYS: RuleId = RuleId::DormantKeys;
pub const DORMANT_MEMBERS: RuleId = RuleId::DormantMembers;
pub const KEY_HYGIENE: RuleId = RuleId::KeyHygiene;
pub const DIRECTORY_DEPARTED: RuleId = RuleId::DirectoryDeparted;
pub const DIRECTORY_UNKNOWN: RuleId = RuleId::DirectoryUnknown;
pub const ASSIGNMENT_DRIFT: RuleId = RuleId::AssignmentDrift;
pub const REMEDIATION_GUARD: RuleId = RuleId::RemediationGuard;
/// Why the directory rules did not run when no `[[directories]]` source is configured: a
/// choice, not a failure (the report does not raise its banner for it).
pub const DIRECTORIES_NOT_CONFIGURED: &str = "no [[directories]] source configured";
/// Why `assignment_drift` did not run when no source reads the Claude app's assignments.
pub const ASSIGNMENTS_NOT_CONFIGURED: &str = "no directory source reads the app assignments";
/// Why the roster rule did not run when no roster is configured: a choice, not a failure (the
/// report does not raise its banner for it).
pub const ROSTER_NOT_CONFIGURED: &str = "no roster_csv configured";
/// Why a rule that compares two snapshots did not run on the first one: expected, not a failure.
pub const NO_PREVIOUS_SNAPSHOT: &str = "needs a previous snapshot";
/// Why the usage rules did not run when the audit had no usage data at all (no ingest has run
/// or none is configured): a choice or a first run, not a failure. A failed ingest and data too
/// short for the rule's window are other reasons, each starting with [`USAGE_UNAVAILABLE`].
pub const NO_USAGE_DATA: &str = "usage data unavailable: none has been ingested";
/// How every reason a usage rule did not run begins: missing data is never read as "no usage".
pub const USAGE_UNAVAILABLE: &str = "usage data unavailable";

/// Every rule id the policy can emit, in the order [`Evaluation::rules`] lists them.
pub const RULE_IDS: &[RuleId] = &[
    STALE_INVITES,
    DEPARTED_DOMAINS,
    OFFBOARDING_ROSTER,
    ORPHANED_KEYS,
    UNATTRIBUTED_KEYS,
    EXCESS_ADMINS,
    PRIVILEGE_ESCALATION,
    DORMANT_KEYS,
    DORMANT_MEMBERS,
    KEY_HYGIENE,
    DIRECTORY_DEPARTED,
    DIRECTORY_UNKNOWN,
    ASSIGNMENT_DRIFT,
];

/// The compliance controls a rule's findings give evidence for.
///
/// The mapping, and why:
/// - `stale_invites`: an unused invite is a provisioned-but-unneeded credential path, so it
///   belongs to account provisioning and management (SOC 2 CC6.2, NIST 800-53 AC-2).
/// - `departed_domains` and `offboarding_roster`: access left behind by people who left is
///   the core of de-provisioning (SOC 2 CC6.2 and CC6.3), of disabling accounts that should no
///   longer exist (NIST AC-2(3)) and of personnel termination (NIST PS-4).
/// - `orphaned_keys`: a credential without an accountable owner weakens logical access control
///   and authenticator management (SOC 2 CC6.1, CC6.3, NIST IA-5) and is an account that should
///   have been disabled (NIST AC-2(3)).
/// - `unattributed_keys`: nobody can be held to a credential without an owner (SOC 2 CC6.1,
///   NIST IA-5); it is not tied to a departure, hence no AC-2(3).
/// - `excess_admins`: least privilege for privileged accounts (SOC 2 CC6.3, NIST AC-6(5)).
/// - `privilege_escalation`: role changes must be authorised and monitored (SOC 2 CC6.3 and
///   CC7.2, NIST AC-2(4) account-action auditing, AC-6(9) logging of privileged functions).
///
/// - `dormant_keys`: an unused credential is one that should be disabled after a period of
///   inactivity (NIST AC-2(3)) and an authenticator nobody manages (NIST IA-5); removing it is
///   de-provisioning (SOC 2 CC6.1, CC6.2).
/// - `dormant_members`: an inactive account to disable or review (NIST AC-2(3)) and access to
///   review periodically (SOC 2 CC6.2).
/// - `key_hygiene`: an authenticator that is never refreshed (NIST IA-5) or that reaches the
///   whole organization when one workspace would do (least privilege, NIST AC-6; SOC 2 CC6.1,
///   CC6.3).
/// - `directory_departed`: the identity provider's own record of a departure, same as the roster.
/// - `directory_unknown` and `assignment_drift`: accounts the source of truth does not back (or
///   will provision again) are account management (SOC 2 CC6.2, NIST AC-2), and access that
///   deprovisioning there will not remove is AC-2(3).
///
/// - `remediation_guard`: an automated change was stopped as anomalous; that is monitoring of
///   the system's own operation (SOC 2 CC7.2) and change control (CC8.1).
pub fn controls_for(rule: RuleId) -> &'static [&'static str] {
    match rule {
        STALE_INVITES => &["SOC 2 CC6.2", "NIST 800-53 AC-2"],
        DEPARTED_DOMAINS | OFFBOARDING_ROSTER | DIRECTORY_DEPARTED => &[
            "SOC 2 CC6.2",
            "SOC 2 CC6.3",
            "NIST 800-53 AC-2(3)",
            "NIST 800-53 PS-4",
        ],
        ORPHANED_KEYS => &[
            "SOC 2 CC6.1",
            "SOC 2 CC6.3",
            "NIST 800-53 IA-5",
            "NIST 800-53 AC-2(3)",
        ],
        UNATTRIBUTED_KEYS => &["SOC 2 CC6.1", "NIST 800-53 IA-5"],
        EXCESS_ADMINS => &["SOC 2 CC6.3", "NIST 800-53 AC-6(5)"],
        PRIVILEGE_ESCALATION => &[
            "SOC 2 CC6.3",
            "SOC 2 CC7.2",
            "NIST 800-53 AC-2(4)",
            "NIST 800-53 AC-6(9)",
        ],
        DORMANT_KEYS => &[
            "SOC 2 CC6.1",
            "SOC 2 CC6.2",
            "NIST 800-53 AC-2(3)",
            "NIST 800-53 IA-5",
        ],
        DORMANT_MEMBERS => &["SOC 2 CC6.2", "NIST 800-53 AC-2(3)"],
        KEY_HYGIENE => &[
            "SOC 2 CC6.1",
            "SOC 2 CC6.3",
            "NIST 800-53 IA-5",
            "NIST 800-53 AC-6",
        ],
        DIRECTORY_UNKNOWN | ASSIGNMENT_DRIFT => {
            &["SOC 2 CC6.2", "NIST 800-53 AC-2", "NIST 800-53 AC-2(3)"]
        }
        REMEDIATION_GUARD => &["SOC 2 CC7.2", "SOC 2 CC8.1"],
    }
}

/// What kind of object a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Member,
    Invite,
    ApiKey,
    Workspace,
    WorkspaceMember,
    Organization,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Member => "member",
            SubjectKind::Invite => "invite",
            SubjectKind::ApiKey => "api_key",
            SubjectKind::Workspace => "workspace",
            SubjectKind::WorkspaceMember => "workspace_member",
            SubjectKind::Organization => "organization",
        }
    }
}

/// The recommended action for a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    DeleteInvite,
    DeactivateKey,
    RemoveMember,
    RemoveWorkspaceMember,
    /// Report only: a person has to look, nothing can or should be done automatically.
    Review,
    /// Never recommended by a rule: the audit-trail record of an operator accepting a snapshot
    /// as the remediation baseline (`cleanup --accept-baseline`).
    AcceptBaseline,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DeleteInvite => "delete_invite",
            Action::DeactivateKey => "deactivate_key",
            Action::RemoveMember => "remove_member",
            Action::RemoveWorkspaceMember => "remove_workspace_member",
            Action::Review => "review",
            Action::AcceptBaseline => "accept_baseline",
        }
    }
}

/// One thing in the organization that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: RuleId,
    pub severity: Severity,
    pub subject_kind: SubjectKind,
    /// The object id; for a workspace membership `wrkspc_…/user_…`.
    pub subject_id: String,
    /// The human name of the subject: an email, a key name, a workspace or organization name.
    pub subject: String,
    /// One sentence with the facts a reviewer needs.
    pub evidence: String,
    pub action: Action,
    pub controls: &'static [&'static str],
    /// The reason of the exemption that matched; the finding is still listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
    /// Set for workspace memberships, whose removal needs both ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl Finding {
    /// A stable identity across runs: the same object breaking the same rule always has the same
    /// fingerprint, whatever the evidence text says today.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.rule, self.subject_kind, &self.subject_id)
    }
}

/// `rule:subject_kind:subject_id`: the identity of a finding across runs.
pub fn fingerprint(
    rule: impl std::fmt::Display,
    subject_kind: SubjectKind,
    subject_id: &str,
) -> String {
    format!("{rule}:{}:{subject_id}", subject_kind.as_str())
}

/// Someone earlier snapshots listed as a member and the current one does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormerMember {
    pub id: String,
    pub email: String,
    /// When the last snapshot that listed them was taken.
    pub last_seen: DateTime<Utc>,
}

/// The offboarding roster as the caller found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roster {
    NotConfigured,
    Loaded(Vec<RosterEntry>),
    /// The roster exists but cannot be used; the text says why (the [`RosterError`] text, or
    /// why the file could not be read).
    Invalid(String),
}

/// Everything one evaluation depends on.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    pub state: &'a OrgState,
    /// The previous complete snapshot, for `privilege_escalation`, which reads only its time,
    /// members and workspace memberships (the audit job loads no more of it).
    pub previous: Option<&'a OrgState>,
    /// People seen in earlier snapshots and absent from `state`.
    pub former_members: &'a [FormerMember],
    pub rules: &'a RulesConfig,
    pub exemptions: &'a [Exemption],
    pub roster: &'a Roster,
    /// What the usage data says, for `dormant_keys` and `dormant_members`; `None` (or a view
    /// whose `failure` is set) leaves them `not_evaluated`.
    pub usage: Option<&'a UsageView>,
    /// The `[[directories]]` sources, in configuration order.
    pub directories: &'a [DirectoryView],
    pub now: DateTime<Utc>,
}

/// Whether a rule ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleStatus {
    Evaluated,
    Disabled,
    /// Enabled but impossible to evaluate this time; the text says why.
    NotEvaluated(String),
}

impl RuleStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleStatus::Evaluated => "evaluated",
            RuleStatus::Disabled => "disabled",
            RuleStatus::NotEvaluated(_) => "not_evaluated",
        }
    }

    /// Why the rule was not evaluated, if it was not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            RuleStatus::NotEvaluated(reason) => Some(reason),
            _ => None,
        }
    }
}

/// What happened to one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome {
    pub rule: RuleId,
    pub status: RuleStatus,
    pub n_findings: usize,
}

/// Serialised flat, `{"rule", "status", "reason"?, "n_findings"}`, so that reports and JSON
/// output need no nested objects for a status.
impl Serialize for RuleOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let reason = self.status.reason();
        let mut out =
            serializer.serialize_struct("RuleOutcome", 3 + usize::from(reason.is_some()))?;
        out.serialize_field("rule", self.rule.as_str())?;
        out.serialize_field("status", self.status.as_str())?;
        if let Some(reason) = reason {
            out.serialize_field("reason", reason)?;
        }
        out.serialize_field("n_findings", &self.n_findings)?;
        out.end()
    }
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// Sorted by severity (highest first), then rule, subject and subject id.
    pub findings: Vec<Finding>,
    /// One outcome per rule, in [`RULE_IDS`] order.
    pub rules: Vec<RuleOutcome>,
}

/// Evaluates every rule against `input.state`.
///
/// A rule that cannot run (no roster, no previous snapshot) is reported as not evaluated and
/// the others still run: one missing input must never hide the findings of the rest.
pub fn evaluate(input: &PolicyInput<'_>) -> Evaluation {
    let ctx = rules::Context::new(input);
    let r = input.rules;

    let roster = || match input.roster {
        Roster::NotConfigured => Err(ROSTER_NOT_CONFIGURED.to_owned()),
        Roster::Invalid(error) => Err(error.clone()),
        Roster::Loaded(entries) => Ok(rules::offboarding_roster(&ctx, entries)),
    };
    let escalation = || match input.previous {
        None => Err(NO_PREVIOUS_SNAPSHOT.to_owned()),
        Some(previous) => Ok(rules::privilege_escalation(&ctx, previous)),
    };

    let usage = |idle_days: u32, key: &str| {
        usage_covering(input.usage, input.now.date_naive(), idle_days, key)
    };
    let dirs = rules::Directories::new(input.directories);
    let partial = dirs.failures();
    let directory_rule = |body: &dyn Fn() -> Vec<Finding>| {
        if input.directories.is_empty() {
            return (Vec::new(), Some(DIRECTORIES_NOT_CONFIGURED.to_owned()));
        }
        // Sources that could not be read leave the rule not evaluated (their earlier findings
        // keep their status); what the readable ones show is still reported.
        (body(), partial.clone())
    };
    let any_assignments = input.directories.iter().any(|v| {
        v.read
            .as_ref()
            .map_or(true, |read| read.listing.assigned.is_some())
    });

    // The two costliest rules run on a second thread while this one runs the rest (the rules
    // are pure and share only read-only input); the outcomes keep the order below.
    let (side, here) = std::thread::scope(|scope| {
        let side = scope.spawn(|| {
            [
                run(DEPARTED_DOMAINS, r.departed_domains.enabled, || {
                    Ok(rules::departed_domains(&ctx))
                }),
                run(ORPHANED_KEYS, r.orphaned_keys.enabled, || {
                    Ok(rules::orphaned_keys(&ctx))
                }),
            ]
        });
        let here = [
            run(STALE_INVITES, r.stale_invites.enabled, || {
                Ok(rules::stale_invites(&ctx))
            }),
            run(OFFBOARDING_ROSTER, r.offboarding_roster.enabled, roster),
            run(UNATTRIBUTED_KEYS, r.orphaned_keys.enabled, || {
                Ok(rules::unattributed_keys(&ctx))
            }),
            run(EXCESS_ADMINS, r.excess_admins.enabled, || {
                Ok(rules::excess_admins(&ctx))
            }),
            run(
                PRIVILEGE_ESCALATION,
                r.privilege_escalation.enabled,
                escalation,
            ),
            run(DORMANT_KEYS, r.dormant_keys.enabled, || {
                let idle = r.dormant_keys.max_idle_days;
                let view = usage(idle, "rules.dormant_keys.max_idle_days")?;
                Ok(rules::dormant_keys(&ctx, view))
            }),
            run(DORMANT_MEMBERS, r.dormant_members.enabled, || {
                let idle = r.dormant_members.max_idle_days;
                let view = usage(idle, "rules.dormant_members.max_idle_days")?;
                Ok(rules::dormant_members(&ctx, view))
            }),
            run(KEY_HYGIENE, r.key_hygiene.enabled, || {
                Ok(rules::key_hygiene(&ctx))
            }),
            run_partial(DIRECTORY_DEPARTED, r.directory_departed.enabled, || {
                directory_rule(&|| rules::directory_departed(&ctx, &dirs))
            }),
            run_partial(DIRECTORY_UNKNOWN, r.directory_unknown.enabled, || {
                directory_rule(&|| rules::directory_unknown(&ctx, &dirs))
            }),
            run_partial(ASSIGNMENT_DRIFT, r.assignment_drift.enabled, || {
                if !input.directories.is_empty() && !any_assignments {
                    return (Vec::new(), Some(ASSIGNMENTS_NOT_CONFIGURED.to_owned()));
                }
                directory_rule(&|| rules::assignment_drift(&ctx, &dirs))
            }),
        ];
        let side = side
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (side, here)
    });
    let [departed, orphaned] = side;
    let [stale, roster, unattributed, excess, escalation, dormant_keys, dormant_members, hygiene, dir_departed, dir_unknown, drift] =
        here;
    let runs = [
        stale,
        departed,
        roster,
        orphaned,
        unattributed,
        excess,
        escalation,
        dormant_keys,
        dormant_members,
        hygiene,
        dir_departed,
        dir_unknown,
        drift,
    ];

    let mut findings = Vec::with_capacity(runs.iter().map(|(_, found)| found.len()).sum());
    let mut outcomes = Vec::with_capacity(runs.len());
    for (outcome, found) in runs {
        findings.extend(found);
        outcomes.push(outcome);
    }
    crate::order::sort_large_by(&mut findings, |a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.rule.as_str().cmp(b.rule.as_str()))
            .then_with(|| a.subject.cmp(&b.subject))
            .then_with(|| a.subject_id.cmp(&b.subject_id))
    });
    Evaluation {
        findings,
        rules: outcomes,
    }
}

/// The usage view when it can tell who was idle for `idle_days` up to `today`: present, not
/// failed, and beginning early enough. Otherwise why not, starting with [`USAGE_UNAVAILABLE`];
/// `setting` names the option that asks for the window.
fn usage_covering<'v>(
    usage: Option<&'v UsageView>,
    today: chrono::NaiveDate,
    idle_days: u32,
    setting: &str,
) -> Result<&'v UsageView, String> {
    let view = usage.ok_or_else(|| NO_USAGE_DATA.to_owned())?;
    if let Some(failure) = &view.failure {
        return Err(format!("{USAGE_UNAVAILABLE}: {failure}"));
    }
    let Some(from) = view.covered_from else {
        return Err(NO_USAGE_DATA.to_owned());
    };
    // The data must cover the last `idle_days` days, today included (what `[usage]
    // backfill_days` fetches): with the defaults (90 and 90) the rules run on the first ingest.
    let needed = today - chrono::Duration::days(i64::from(idle_days) - 1);
    if from > needed {
        return Err(format!(
            "{USAGE_UNAVAILABLE}: it begins on {from}, and {setting} = {idle_days} needs it \
             from {needed} (raise [usage] backfill_days or wait for it to grow)"
        ));
    }
    Ok(view)
}

/// Runs one rule when it is enabled and records its outcome.
fn run(
    rule: RuleId,
    enabled: bool,
    body: impl FnOnce() -> Result<Vec<Finding>, String>,
) -> (RuleOutcome, Vec<Finding>) {
    run_partial(rule, enabled, || match body() {
        Ok(found) => (found, None),
        Err(reason) => (Vec::new(), Some(reason)),
    })
}

/// Runs one rule that may run in part: its findings, and why it is not wholly evaluated (then
/// it is reported `not_evaluated`, so nothing of it is resolved, with what it did find).
fn run_partial(
    rule: RuleId,
    enabled: bool,
    body: impl FnOnce() -> (Vec<Finding>, Option<String>),
) -> (RuleOutcome, Vec<Finding>) {
    let (status, found) = if !enabled {
        (RuleStatus::Disabled, Vec::new())
    } else {
        match body() {
            (found, None) => (RuleStatus::Evaluated, found),
            (found, Some(reason)) => (RuleStatus::NotEvaluated(reason), found),
        }
    };
    let outcome = RuleOutcome {
        rule,
        status,
        n_findings: found.len(),
    };
    (outcome, found)
}
