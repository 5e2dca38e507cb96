//! Configuration: a TOML file plus `ORGWARDEN__SECTION__KEY` environment overrides, parsed into a
//! raw form and then validated into typed values.
//!
//! Validation never stops at the first problem: every unknown key, every wrong type and every bad
//! value is collected and reported at once, each naming its key (`api.base_url: ...`). Secrets are
//! `SecretString` from the moment they are read, and come from, in order: the systemd credentials
//! directory, a `*_file` path, the environment, and (with a warning when the file is readable by
//! others) the config file itself.
//!
//! # Layout
//! - this file: the typed [`Config`] the rest of the program reads, and the problem types;
//! - `raw`: every section exactly as written (`deny_unknown_fields`), and the schema's skeleton;
//! - `load`: finding the file, the environment overlay, the unknown-key walker, one raw section
//!   at a time ([`load`], [`Config::from_toml`]);
//! - `validate`: raw sections into typed values, one function per section, every problem kept;
//! - `secrets`: the admin key and SMTP password from their sources, as `SecretString`;
//! - `parse`: cron expressions, durations and domains.

mod base_url;
mod directories;
mod directory_check;
mod load;
mod parse;
mod raw;
mod secrets;
#[cfg(test)]
mod tests;
mod validate;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

pub use base_url::check_base_url;
pub use directories::{
    DirectoryConfig, DirectorySource, EntraSettings, GoogleSettings, LdapDisabledRule,
    LdapSettings, OktaAuth, OktaSettings,
};
pub use load::{load, Environment, Loaded};
pub use parse::{normalize_domain, parse_cron, parse_duration};
pub use raw::known_keys;
pub use secrets::{ADMIN_KEY_CREDENTIAL, SMTP_PASSWORD_CREDENTIAL};

// Domain types the configuration builds, defined next to the code that owns them and re-exported
// here so that `crate::config::Severity` and the like keep working.
pub use crate::policy::exemption::{Exemption, ExemptionMatch};
pub use crate::policy::severity::Severity;
pub use crate::remediate::mode::RemediationMode;

/// Where the configuration is read from when neither `--config` nor `$ORGWARDEN_CONFIG` is set.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/orgwarden/config.toml";

/// One problem with the configuration, naming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found, in the order met.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub source_description: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({}): {} problem{}",
            self.source_description,
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

// ---- Validated configuration --------------------------------------------------------------------

/// The validated configuration. Built only by [`load`] or [`Config::from_toml`].
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub rules: RulesConfig,
    pub exemptions: Vec<Exemption>,
    pub remediation: RemediationConfig,
    /// `None` when no recipients are configured: reports are then only written to disk.
    pub mail: Option<MailConfig>,
    pub report: ReportConfig,
    pub schedule: ScheduleConfig,
    pub metrics: MetricsConfig,
    pub events: EventsConfig,
    /// `[alerts]`: immediate alerts after each audit cycle (no channels: none are sent).
    pub alerts: AlertsConfig,
    /// `[[directories]]`: the enabled identity-provider sources, in configuration order.
    pub directories: Vec<DirectoryConfig>,
    /// `[usage]`: the daily usage ingest the usage rules read.
    pub usage: UsageConfig,
}

/// `[usage]`: the organization's usage reports, ingested into daily aggregates by each audit
/// cycle before it evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageConfig {
    /// Off: nothing is fetched and the usage rules are `not_evaluated`.
    pub enabled: bool,
    /// How many UTC days (today included) the first ingest fetches and the store keeps covered.
    pub backfill_days: u32,
}

impl UsageConfig {
    pub const DEFAULT_BACKFILL_DAYS: u32 = 90;
    /// A little over a year: the reports' history is bounded, and a larger window only costs
    /// calls.
    pub const MAX_BACKFILL_DAYS: u32 = 400;
}

impl Default for UsageConfig {
    fn default() -> UsageConfig {
        UsageConfig {
            enabled: true,
            backfill_days: UsageConfig::DEFAULT_BACKFILL_DAYS,
        }
    }
}

/// `[alerts]`: what is alerted on at once, and where.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// New findings at or above this severity are alerted (default high).
    pub min_severity: Severity,
    /// A streak of this many failed snapshot runs in a row is alerted (default 2).
    pub failed_runs: u32,
    /// More alerts than this due at once for a channel go out as one digest (default 10).
    pub max_per_message: usize,
    pub channels: Vec<AlertChannel>,
    /// `[alerts.owner_notice]`: mail the owner of a key before remediation acts on it.
    pub owner_notice: OwnerNoticeConfig,
}

/// `[alerts.owner_notice]`: owner notices, off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerNoticeConfig {
    pub enabled: bool,
    /// How an owner asks for an exemption (a team, an address, a ticket queue).
    pub contact: String,
}

/// The kinds of `[[alerts.channels]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Webhook,
    Slack,
    Teams,
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::Email => "email",
        }
    }
}

/// One `[[alerts.channels]]` entry.
#[derive(Debug, Clone)]
pub struct AlertChannel {
    pub name: String,
    pub kind: ChannelKind,
    /// The receiver's URL (webhook, slack, teams): a secret, since chat webhook URLs carry
    /// their token. `None` only for email.
    pub url: Option<SecretString>,
    /// The webhook's HMAC-SHA256 signing key.
    pub secret: Option<SecretString>,
    /// The email channel's recipients.
    pub to: Vec<lettre::message::Mailbox>,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub base_url: Url,
    /// `None` when no source provided one; commands that call the API refuse to start.
    pub admin_key: Option<SecretString>,
    pub anthropic_version: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub total_deadline: Duration,
    pub max_retries: u32,
    pub requests_per_second: Option<f64>,
    pub max_in_flight: usize,
    pub page_size: u32,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub keep_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone)]
pub struct RulesConfig {
    pub stale_invites: StaleInvitesRule,
    pub departed_domains: DepartedDomainsRule,
    pub offboarding_roster: RosterRule,
    pub orphaned_keys: OrphanedKeysRule,
    pub excess_admins: ExcessAdminsRule,
    pub privilege_escalation: PrivilegeEscalationRule,
    pub dormant_keys: DormantKeysRule,
    pub dormant_members: DormantMembersRule,
    pub key_hygiene: KeyHygieneRule,
    pub directory_departed: DirectoryDepartedRule,
    pub directory_unknown: DirectoryUnknownRule,
    pub assignment_drift: AssignmentDriftRule,
}

/// Declares one rule's validated settings: the fields every rule shares (`enabled`, `severity`,
/// and `remediate` for a rule marked `remediable`), then the rule's own. Validation fills the
/// shared ones through one helper; see `raw_rule!` for the raw side.
macro_rules! rule {
    (@struct $(#[$doc:meta])* $name:ident { $($own:tt)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            /// Whether the rule runs at all.
            pub enabled: bool,
            /// The severity of the rule's findings.
            pub severity: Severity,
            $($own)*
        }
    };
    ($(#[$doc:meta])* $name:ident, remediable { $($own:tt)* }) => {
        rule!(@struct $(#[$doc])* $name {
            /// Opt-in to carrying out the rule's recommended actions (deleting invites,
            /// deactivating keys) when remediation is enforced.
            pub remediate: bool,
            $($own)*
        });
    };
    ($(#[$doc:meta])* $name:ident { $($own:tt)* }) => {
        rule!(@struct $(#[$doc])* $name { $($own)* });
    };
}

rule!(
    /// `[rules.stale_invites]`: pending invites too old, and expired invites still listed.
    StaleInvitesRule, remediable {
        pub max_pending_days: u32,
    }
);

rule!(
    /// `[rules.departed_domains]`: members, invites and keys of departed (or not allowed) domains.
    DepartedDomainsRule, remediable {
        /// Normalised (IDNA, lowercase) domains; subdomains match too.
        pub departed_domains: Vec<String>,
        /// When not empty, any other domain is a finding.
        pub allowed_domains: Vec<String>,
        /// Removing members is a separate, explicit opt-in.
        pub remove_members: bool,
    }
);

rule!(
    /// `[rules.offboarding_roster]`: people on the offboarding roster who still have access.
    RosterRule, remediable {
        pub roster_csv: Option<PathBuf>,
        pub email_column: String,
        pub last_day_column: String,
        pub remove_members: bool,
    }
);

rule!(
    /// `[rules.orphaned_keys]`: active keys whose owner is no longer a member; the same settings
    /// govern `unattributed_keys` (active keys that name no owner).
    OrphanedKeysRule, remediable {}
);

rule!(
    /// `[rules.excess_admins]`: more organization or workspace admins than allowed.
    ExcessAdminsRule {
        pub max_admins: u32,
        pub max_workspace_admins: u32,
    }
);

rule!(
    /// `[rules.privilege_escalation]`: members who became admins since the previous snapshot.
    PrivilegeEscalationRule {}
);

rule!(
    /// `[rules.dormant_keys]`: active keys nobody has called the API with for `max_idle_days`.
    DormantKeysRule, remediable {
        /// Days without usage (and of age) after which a key is dormant; at least 1.
        pub max_idle_days: u32,
    }
);

rule!(
    /// `[rules.dormant_members]`: members with neither API usage nor Claude Code activity for
    /// `max_idle_days`; report-only (a seat is a person's, not a machine's, to give up).
    DormantMembersRule {
        /// Days without activity (and of membership) after which a seat is dormant; at least 1.
        pub max_idle_days: u32,
    }
);

rule!(
    /// `[rules.key_hygiene]`: active keys that never expire and are older than
    /// `max_key_age_days`, and (when `flag_org_scoped`) organization-scoped keys; report-only.
    KeyHygieneRule {
        /// Age after which a key without an expiry is a finding; at least 1.
        pub max_key_age_days: u32,
        /// Also report every active organization-scoped key.
        pub flag_org_scoped: bool,
    }
);

rule!(
    /// `[rules.directory_departed]`: access left to people their authoritative directory lists
    /// as disabled or deleted; the same actions and guards as the roster.
    DirectoryDepartedRule, remediable {
        /// Removing members is a separate, explicit opt-in.
        pub remove_members: bool,
    }
);

rule!(
    /// `[rules.directory_unknown]`: members and invites in a directory's domains that it has no
    /// account for (review).
    DirectoryUnknownRule {}
);

rule!(
    /// `[rules.assignment_drift]`: members not assigned to the Claude application in the
    /// identity provider, and removed members still assigned and active there (review).
    AssignmentDriftRule {}
);

#[derive(Debug, Clone)]
pub struct RemediationConfig {
    pub mode: RemediationMode,
    pub max_snapshot_age: Duration,
    pub min_consecutive_snapshots: u32,
    pub max_actions_per_run: u32,
    pub max_fraction: f64,
    pub max_population_drop: f64,
    /// How far back the population-drop guard looks for its trusted baseline (default 7 days).
    pub baseline_window: Duration,
    /// How long a finding must have been seen before it is acted on (default 24 hours).
    pub min_finding_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    StartTls,
    Tls,
    None,
}

#[derive(Debug, Clone)]
pub enum MailTransport {
    Smtp {
        host: String,
        port: u16,
        tls: TlsMode,
        username: Option<String>,
        password: Option<SecretString>,
        timeout: Duration,
        /// An extra PEM root certificate to trust (e.g. an internal CA), besides the system roots.
        ca_file: Option<PathBuf>,
    },
    File {
        dir: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    pub from: lettre::message::Mailbox,
    pub to: Vec<lettre::message::Mailbox>,
    pub transport: MailTransport,
    /// The largest message to hand to the server, in bytes (`mail.max_message_bytes`, default
    /// 10 MB). A larger one goes out without its attachments, naming where they are kept.
    pub max_message_bytes: u64,
    /// Attachments larger than this in total (bytes) are sent as one `report.zip`
    /// (`mail.zip_over_bytes`, default 2 MB or `max_message_bytes` if lower).
    pub zip_over_bytes: u64,
}

/// The default of `mail.max_message_bytes`: 10 MB, below most servers' limits.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 10_000_000;
/// The default of `mail.zip_over_bytes`: 2 MB.
pub const DEFAULT_ZIP_OVER_BYTES: u64 = 2_000_000;
/// The range `mail.max_message_bytes` may take.
pub const MAX_MESSAGE_BYTES_RANGE: std::ops::RangeInclusive<u64> = 10_000..=1_000_000_000;

#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub out_dir: PathBuf,
    pub top_findings: usize,
    /// Start every CSV with a UTF-8 byte order mark, so that Excel reads non-ASCII text.
    pub csv_bom: bool,
}

/// `[metrics]`: where the Prometheus metrics go (both optional).
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// The daemon serves `GET /metrics` and `GET /healthz` here; loopback unless
    /// `allow_remote` was set.
    pub listen: Option<std::net::SocketAddr>,
    /// Rewritten atomically after each job, for node_exporter's textfile collector.
    pub textfile: Option<PathBuf>,
}

/// `[events]`: the event stream for SIEMs.
#[derive(Debug, Clone, Default)]
pub struct EventsConfig {
    /// After each job, new events are appended here as JSON lines.
    pub path: Option<EventsPath>,
    /// The file is renamed to `<path>.1` when an append would make it larger than this.
    pub max_bytes: u64,
}

/// Where `[events] path` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsPath {
    /// `"-"`: standard output (journald under systemd).
    Stdout,
    File(PathBuf),
}

/// The default `events.max_bytes`: 100 MB.
pub const DEFAULT_EVENTS_MAX_BYTES: u64 = 100_000_000;

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub timezone: chrono_tz::Tz,
    pub audit: String,
    pub report: String,
    pub outbox: String,
    pub run_on_start: bool,
    pub shutdown_timeout: Duration,
}
