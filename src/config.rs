//! Configuration: a TOML file plus `ORGWARDEN__SECTION__KEY` environment overrides, parsed into a
//! raw form and then validated into typed values.
//!
//! Validation never stops at the first problem: every unknown key, every wrong type and every bad
//! value is collected and reported at once, each naming its key (`api.base_url: ...`). Secrets are
//! `SecretString` from the moment they are read, and come from, in order: the systemd credentials
//! directory, a `*_file` path, the environment, and (with a warning when the file is readable by
//! others) the config file itself.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::admin_api::check_base_url;

/// Where the configuration is read from when neither `--config` nor `$ORGWARDEN_CONFIG` is set.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/orgwarden/config.toml";
/// The systemd credential names (`LoadCredential=NAME:...`).
pub const ADMIN_KEY_CREDENTIAL: &str = "anthropic_admin_key";
pub const SMTP_PASSWORD_CREDENTIAL: &str = "smtp_password";

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct RulesConfig {
    pub stale_invites: StaleInvitesRule,
    pub departed_domains: DepartedDomainsRule,
    pub offboarding_roster: RosterRule,
    pub orphaned_keys: OrphanedKeysRule,
    pub excess_admins: ExcessAdminsRule,
    pub privilege_escalation: PrivilegeEscalationRule,
}

#[derive(Debug, Clone)]
pub struct StaleInvitesRule {
    pub enabled: bool,
    pub severity: Severity,
    pub max_pending_days: u32,
    /// Opt-in to deleting these invites when remediation is enforced.
    pub remediate: bool,
}

#[derive(Debug, Clone)]
pub struct DepartedDomainsRule {
    pub enabled: bool,
    pub severity: Severity,
    /// Normalised (IDNA, lowercase) domains; subdomains match too.
    pub departed_domains: Vec<String>,
    /// When not empty, any other domain is a finding.
    pub allowed_domains: Vec<String>,
    pub remediate: bool,
    /// Removing members is a separate, explicit opt-in.
    pub remove_members: bool,
}

#[derive(Debug, Clone)]
pub struct RosterRule {
    pub enabled: bool,
    pub severity: Severity,
    pub roster_csv: Option<PathBuf>,
    pub email_column: String,
    pub last_day_column: String,
    pub remediate: bool,
    pub remove_members: bool,
}

#[derive(Debug, Clone)]
pub struct OrphanedKeysRule {
    pub enabled: bool,
    pub severity: Severity,
    pub remediate: bool,
}

#[derive(Debug, Clone)]
pub struct ExcessAdminsRule {
    pub enabled: bool,
    pub severity: Severity,
    pub max_admins: u32,
    pub max_workspace_admins: u32,
}

#[derive(Debug, Clone)]
pub struct PrivilegeEscalationRule {
    pub enabled: bool,
    pub severity: Severity,
}

/// What an exemption matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExemptionMatch {
    /// A member (or invite) email, compared case-insensitively.
    Email(String),
    KeyId(String),
    /// A glob over key names (`*` and `?`).
    KeyName(String),
}

#[derive(Debug, Clone)]
pub struct Exemption {
    pub matches: ExemptionMatch,
    pub reason: String,
    /// Last day the exemption holds (inclusive); `None` for ever.
    pub until: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemediationMode {
    Off,
    DryRun,
    Enforce,
}

impl RemediationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RemediationMode::Off => "off",
            RemediationMode::DryRun => "dry-run",
            RemediationMode::Enforce => "enforce",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RemediationConfig {
    pub mode: RemediationMode,
    pub max_snapshot_age: Duration,
    pub min_consecutive_snapshots: u32,
    pub max_actions_per_run: u32,
    pub max_fraction: f64,
    pub max_population_drop: f64,
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
}

#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub out_dir: PathBuf,
    pub top_findings: usize,
}

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub timezone: chrono_tz::Tz,
    pub audit: String,
    pub report: String,
    pub outbox: String,
    pub run_on_start: bool,
    pub shutdown_timeout: Duration,
}

// ---- Raw configuration (exactly as written) ------------------------------------------------------

/// A list written either as a TOML array or, from the environment, as `a,b,c`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum StringList {
    List(Vec<String>),
    Text(String),
}

impl Default for StringList {
    fn default() -> Self {
        StringList::List(Vec::new())
    }
}

impl StringList {
    fn items(&self) -> Vec<String> {
        match self {
            StringList::List(items) => items.iter().map(|s| s.trim().to_owned()).collect(),
            StringList::Text(text) => text
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

// Raw structs deliberately do not derive Debug: they may hold an inline secret as plain text.
#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    api: RawApi,
    store: RawStore,
    log: RawLog,
    rules: RawRules,
    exemptions: Vec<RawExemption>,
    remediation: RawRemediation,
    mail: RawMail,
    report: RawReport,
    schedule: RawSchedule,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawApi {
    base_url: Option<String>,
    admin_key: Option<String>,
    admin_key_file: Option<PathBuf>,
    anthropic_version: Option<String>,
    connect_timeout: Option<String>,
    request_timeout: Option<String>,
    total_deadline: Option<String>,
    max_retries: Option<u32>,
    requests_per_second: Option<f64>,
    max_in_flight: Option<usize>,
    page_size: Option<u32>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
    keep_days: Option<u32>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRules {
    stale_invites: RawStaleInvites,
    departed_domains: RawDepartedDomains,
    offboarding_roster: RawRoster,
    orphaned_keys: RawOrphanedKeys,
    excess_admins: RawExcessAdmins,
    privilege_escalation: RawPrivilegeEscalation,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawStaleInvites {
    enabled: Option<bool>,
    severity: Option<String>,
    max_pending_days: Option<u32>,
    remediate: Option<bool>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawDepartedDomains {
    enabled: Option<bool>,
    severity: Option<String>,
    departed_domains: StringList,
    allowed_domains: StringList,
    remediate: Option<bool>,
    remove_members: Option<bool>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRoster {
    enabled: Option<bool>,
    severity: Option<String>,
    roster_csv: Option<PathBuf>,
    email_column: Option<String>,
    last_day_column: Option<String>,
    remediate: Option<bool>,
    remove_members: Option<bool>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawOrphanedKeys {
    enabled: Option<bool>,
    severity: Option<String>,
    remediate: Option<bool>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawExcessAdmins {
    enabled: Option<bool>,
    severity: Option<String>,
    max_admins: Option<u32>,
    max_workspace_admins: Option<u32>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawPrivilegeEscalation {
    enabled: Option<bool>,
    severity: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawExemption {
    email: Option<String>,
    key_id: Option<String>,
    key_name: Option<String>,
    reason: Option<String>,
    until: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRemediation {
    mode: Option<String>,
    max_snapshot_age: Option<String>,
    min_consecutive_snapshots: Option<u32>,
    max_actions_per_run: Option<u32>,
    max_fraction: Option<f64>,
    max_population_drop: Option<f64>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawMail {
    from: Option<String>,
    to: StringList,
    transport: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    timeout: Option<String>,
    ca_file: Option<PathBuf>,
    dir: Option<PathBuf>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawReport {
    out_dir: Option<PathBuf>,
    top_findings: Option<usize>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSchedule {
    timezone: Option<String>,
    audit: Option<String>,
    report: Option<String>,
    outbox: Option<String>,
    run_on_start: Option<bool>,
    shutdown_timeout: Option<String>,
}

// ---- Loading -----------------------------------------------------------------------------------

/// The environment a configuration is resolved in; tests build their own instead of mutating the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Variables considered (`ORGWARDEN__*`, `ANTHROPIC_ADMIN_KEY`, `CREDENTIALS_DIRECTORY`, ...).
    pub vars: Vec<(String, String)>,
}

impl Environment {
    /// The process environment.
    pub fn from_process() -> Environment {
        Environment {
            vars: std::env::vars().collect(),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A loaded configuration and what the operator should know about it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// Non-fatal remarks (an inline secret in a readable file, no file found, ...).
    pub warnings: Vec<String>,
}

/// Resolves the file (`--config`, else `$ORGWARDEN_CONFIG`, else the default path), reads it and
/// the environment overrides, and validates the result.
pub fn load(explicit: Option<&Path>, env: &Environment) -> Result<Loaded, ConfigError> {
    let (path, required) = match explicit {
        Some(path) => (PathBuf::from(path), true),
        None => match env.get("ORGWARDEN_CONFIG") {
            Some(path) if !path.is_empty() => (PathBuf::from(path), true),
            _ => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        },
    };
    let mut warnings = Vec::new();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
            warnings.push(format!(
                "no configuration file at {}; using defaults and the environment",
                path.display()
            ));
            None
        }
        Err(error) => {
            return Err(ConfigError {
                source_description: path.display().to_string(),
                problems: vec![Problem {
                    key: "(file)".to_owned(),
                    message: format!("cannot read {}: {error}", path.display()),
                }],
            })
        }
    };
    let file_readable_by_others = text.is_some() && readable_by_others(&path);
    let description = match &text {
        Some(_) => path.display().to_string(),
        None => "environment only".to_owned(),
    };
    let mut config = resolve(
        text.as_deref(),
        env,
        file_readable_by_others,
        &description,
        &mut warnings,
    )?;
    // Relative paths in a file are relative to the file, so a service and a person running a
    // one-off command from another directory read the same database.
    if let (Some(_), Some(dir)) = (&text, path.parent()) {
        config.rebase_paths(dir);
    }
    Ok(Loaded {
        config,
        path: text.map(|_| path),
        warnings,
    })
}

impl Config {
    /// Validates a configuration given as TOML text, with an explicit environment. Used by tests,
    /// the demo and `load`.
    pub fn from_toml(text: &str, env: &Environment) -> Result<(Config, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let config = resolve(Some(text), env, false, "inline", &mut warnings)?;
        Ok((config, warnings))
    }

    fn rebase_paths(&mut self, dir: &Path) {
        let rebase = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        };
        rebase(&mut self.store.path);
        rebase(&mut self.report.out_dir);
        if let Some(roster) = &mut self.rules.offboarding_roster.roster_csv {
            rebase(roster);
        }
        if let Some(MailConfig {
            transport: MailTransport::File { dir: mail_dir },
            ..
        }) = &mut self.mail
        {
            rebase(mail_dir);
        }
        if let Some(MailConfig {
            transport:
                MailTransport::Smtp {
                    ca_file: Some(ca_file),
                    ..
                },
            ..
        }) = &mut self.mail
        {
            rebase(ca_file);
        }
    }
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o044 != 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> bool {
    false
}

fn resolve(
    text: Option<&str>,
    env: &Environment,
    file_readable_by_others: bool,
    description: &str,
    warnings: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    let fail = |problems: Vec<Problem>| ConfigError {
        source_description: description.to_owned(),
        problems,
    };
    let mut builder = config::Config::builder();
    if let Some(text) = text {
        builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
    }
    let env_map: config::Map<String, String> = env
        .vars
        .iter()
        .filter(|(key, _)| key.starts_with("ORGWARDEN__"))
        .cloned()
        .collect();
    // The environment is added last so that it wins over the file.
    builder = builder.add_source(
        config::Environment::with_prefix("ORGWARDEN")
            .prefix_separator("__")
            .separator("__")
            .source(Some(env_map)),
    );
    let merged = builder.build().map_err(|error| {
        fail(vec![Problem {
            key: "(file)".to_owned(),
            message: error.to_string(),
        }])
    })?;
    let inline_key_from_file = text.is_some_and(|t| file_sets(t, "api", "admin_key"));
    let inline_password_from_file = text.is_some_and(|t| file_sets(t, "mail", "password"));

    let mut problems = Vec::new();
    unknown_keys(&merged, &mut problems);
    let raw = sections(&merged, &mut problems);
    let config = validate(raw, env, &mut problems);
    if file_readable_by_others {
        if inline_key_from_file {
            warnings.push("api.admin_key: a secret is written in a config file that other users can read; use a credential (LoadCredential=anthropic_admin_key), api.admin_key_file or ANTHROPIC_ADMIN_KEY".to_owned());
        }
        if inline_password_from_file {
            warnings.push("mail.password: a secret is written in a config file that other users can read; use a credential (LoadCredential=smtp_password) or mail.password_file".to_owned());
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(fail(problems))
    }
}

fn file_sets(text: &str, section: &str, key: &str) -> bool {
    let Ok(value) = text.parse::<toml::Table>() else {
        return false;
    };
    value
        .get(section)
        .and_then(|s| s.get(key))
        .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
}

/// Lists every key that is not part of the schema, by comparing with the raw schema's skeleton.
fn unknown_keys(merged: &config::Config, problems: &mut Vec<Problem>) {
    let Ok(given) = merged.clone().try_deserialize::<serde_json::Value>() else {
        return;
    };
    let skeleton = serde_json::to_value(RawConfig::default()).unwrap_or_default();
    let exemption_skeleton = serde_json::to_value(RawExemption::default()).unwrap_or_default();
    walk_unknown(&given, &skeleton, &exemption_skeleton, "", problems);
}

fn walk_unknown(
    given: &serde_json::Value,
    skeleton: &serde_json::Value,
    exemption_skeleton: &serde_json::Value,
    prefix: &str,
    problems: &mut Vec<Problem>,
) {
    let Some(given) = given.as_object() else {
        return;
    };
    let known = skeleton.as_object();
    for (key, value) in given {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match known.and_then(|k| k.get(key)) {
            None => problems.push(Problem {
                key: path,
                message: "unknown key (a typo?)".to_owned(),
            }),
            Some(sub) if sub.is_object() => {
                walk_unknown(value, sub, exemption_skeleton, &path, problems)
            }
            Some(_) if path == "exemptions" => {
                if let Some(items) = value.as_array() {
                    for (idx, item) in items.iter().enumerate() {
                        let item_path = format!("exemptions[{idx}]");
                        walk_unknown(
                            item,
                            exemption_skeleton,
                            exemption_skeleton,
                            &item_path,
                            problems,
                        );
                    }
                }
            }
            Some(_) => {}
        }
    }
}

/// Deserialises each section on its own, so a type error in one does not hide the others.
fn sections(merged: &config::Config, problems: &mut Vec<Problem>) -> RawConfig {
    let skeleton = serde_json::to_value(RawConfig::default()).unwrap_or_default();
    let exemption_skeleton = serde_json::to_value(RawExemption::default()).unwrap_or_default();
    let section = |key: &str, problems: &mut Vec<Problem>| -> Option<config::Value> {
        let value = match merged.get::<config::Value>(key) {
            Ok(value) => value,
            Err(config::ConfigError::NotFound(_)) => return None,
            Err(error) => {
                problems.push(Problem {
                    key: key.to_owned(),
                    message: error.to_string(),
                });
                return None;
            }
        };
        // Unknown keys were reported by `unknown_keys`; pruning them here lets the rest of the
        // section be checked instead of failing on the first unknown field.
        let template = if key == "exemptions" {
            &exemption_skeleton
        } else {
            key.split('.').fold(&skeleton, |node, part| &node[part])
        };
        Some(prune(value, template))
    };
    fn typed<T: Default + serde::de::DeserializeOwned>(
        value: Option<config::Value>,
        key: &str,
        problems: &mut Vec<Problem>,
    ) -> T {
        let Some(value) = value else {
            return T::default();
        };
        value.try_deserialize::<T>().unwrap_or_else(|error| {
            problems.push(Problem {
                key: key.to_owned(),
                message: error.to_string(),
            });
            T::default()
        })
    }
    macro_rules! take {
        ($key:literal) => {{
            let value = section($key, problems);
            typed(value, $key, problems)
        }};
    }
    RawConfig {
        api: take!("api"),
        store: take!("store"),
        log: take!("log"),
        rules: RawRules {
            stale_invites: take!("rules.stale_invites"),
            departed_domains: take!("rules.departed_domains"),
            offboarding_roster: take!("rules.offboarding_roster"),
            orphaned_keys: take!("rules.orphaned_keys"),
            excess_admins: take!("rules.excess_admins"),
            privilege_escalation: take!("rules.privilege_escalation"),
        },
        exemptions: take!("exemptions"),
        remediation: take!("remediation"),
        mail: take!("mail"),
        report: take!("report"),
        schedule: take!("schedule"),
    }
}

/// Drops the keys of `value` (a table, or an array of tables) that `template` does not have.
fn prune(value: config::Value, template: &serde_json::Value) -> config::Value {
    let origin = value.origin().map(str::to_owned);
    match value.kind {
        config::ValueKind::Table(table) => {
            let kept: config::Map<String, config::Value> = table
                .into_iter()
                .filter(|(key, _)| template.get(key).is_some())
                .collect();
            config::Value::new(origin.as_ref(), config::ValueKind::Table(kept))
        }
        config::ValueKind::Array(items) => {
            let kept: Vec<config::Value> = items
                .into_iter()
                .map(|item| prune(item, template))
                .collect();
            config::Value::new(origin.as_ref(), config::ValueKind::Array(kept))
        }
        kind => config::Value::new(origin.as_ref(), kind),
    }
}
/// Collects problems while turning raw values into typed ones.
struct Check<'a> {
    problems: &'a mut Vec<Problem>,
}

impl Check<'_> {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, value: Option<&str>, default: Duration) -> Duration {
        let Some(text) = value else {
            return default;
        };
        match parse_duration(text) {
            Some(duration) if !duration.is_zero() => duration,
            _ => {
                self.problem(
                    key,
                    format!("{text:?} is not a duration like \"30s\", \"5m\", \"2h\" or \"1d\""),
                );
                default
            }
        }
    }

    fn severity(&mut self, key: &str, value: Option<&str>, default: Severity) -> Severity {
        let Some(text) = value else {
            return default;
        };
        Severity::parse(text).unwrap_or_else(|| {
            self.problem(
                key,
                format!("{text:?} is not one of low, medium, high, critical"),
            );
            default
        })
    }

    fn fraction(&mut self, key: &str, value: Option<f64>, default: f64) -> f64 {
        match value {
            None => default,
            Some(v) if (0.0..=1.0).contains(&v) => v,
            Some(v) => {
                self.problem(key, format!("{v} must be between 0 and 1"));
                default
            }
        }
    }

    fn domains(&mut self, key: &str, items: Vec<String>) -> Vec<String> {
        let mut out = Vec::new();
        for item in items {
            match normalize_domain(&item) {
                Some(domain) => out.push(domain),
                None => self.problem(key, format!("{item:?} is not a valid domain")),
            }
        }
        out
    }

    fn mailbox(&mut self, key: &str, text: &str) -> Option<lettre::message::Mailbox> {
        match text.parse::<lettre::message::Mailbox>() {
            Ok(mailbox) => Some(mailbox),
            Err(error) => {
                self.problem(key, format!("{text:?} is not an email address: {error}"));
                None
            }
        }
    }

    fn cron(&mut self, key: &str, value: Option<String>, default: &str) -> String {
        let expr = value.unwrap_or_else(|| default.to_owned());
        if let Err(error) = parse_cron(&expr) {
            self.problem(key, format!("{expr:?} is not a cron expression with seconds (sec min hour dom mon dow): {error}"));
        }
        expr
    }
}

/// Parses a `[schedule]` cron expression: six fields, seconds first (`sec min hour dom mon dow`).
/// The one parser behind validation, the daemon's schedule and `status`.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr)
}

/// Parses `"30s"`, `"5m"`, `"2h"`, `"1d"`, `"500ms"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => number,
        "ms" => number / 1000.0,
        "m" | "min" | "mins" => number * 60.0,
        "h" | "hour" | "hours" => number * 3600.0,
        "d" | "day" | "days" => number * 86400.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Lowercases and IDNA-normalises a domain (`Bücher.Example` → `xn--bcher-kva.example`).
pub fn normalize_domain(text: &str) -> Option<String> {
    let trimmed = text.trim().trim_start_matches('@').trim_end_matches('.');
    if trimmed.is_empty() || trimmed.contains(['@', '/', ' ']) {
        return None;
    }
    idna::domain_to_ascii(trimmed)
        .ok()
        .filter(|d| !d.is_empty())
}

/// Reads a secret from the first source that has it: credentials directory, file, environment,
/// inline value.
fn read_secret(
    check: &mut Check<'_>,
    key: &str,
    env: &Environment,
    credential: &str,
    file: Option<&Path>,
    env_var: Option<&str>,
    inline: Option<String>,
) -> Option<SecretString> {
    if let Some(dir) = env.get("CREDENTIALS_DIRECTORY") {
        let path = Path::new(dir).join(credential);
        if path.exists() {
            return secret_from_file(check, key, &path);
        }
    }
    if let Some(path) = file {
        return secret_from_file(check, &format!("{key}_file"), path);
    }
    if let Some(value) = env_var.and_then(|name| env.get(name)) {
        if !value.trim().is_empty() {
            return Some(SecretString::from(value.trim().to_owned()));
        }
    }
    inline
        .filter(|value| !value.trim().is_empty())
        .map(|value| SecretString::from(value.trim().to_owned()))
}

fn secret_from_file(check: &mut Check<'_>, key: &str, path: &Path) -> Option<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Some(SecretString::from(text.trim().to_owned())),
        Ok(_) => {
            check.problem(key, format!("{} is empty", path.display()));
            None
        }
        Err(error) => {
            // The error names the path, never the content.
            check.problem(key, format!("cannot read {}: {error}", path.display()));
            None
        }
    }
}

fn validate(raw: RawConfig, env: &Environment, problems: &mut Vec<Problem>) -> Config {
    let mut check = Check { problems };

    // [api]
    let base_text = raw
        .api
        .base_url
        .unwrap_or_else(|| "https://api.anthropic.com".to_owned());
    let base_url = match Url::parse(&base_text) {
        Ok(url) => {
            if let Err(why) = check_base_url(&url) {
                check.problem("api.base_url", why);
            }
            url
        }
        Err(error) => {
            check.problem(
                "api.base_url",
                format!("{base_text:?} is not a URL: {error}"),
            );
            // A placeholder that is never used: the configuration is rejected.
            Url::parse("https://invalid.invalid").expect("a constant URL parses")
        }
    };
    let admin_key = read_secret(
        &mut check,
        "api.admin_key",
        env,
        ADMIN_KEY_CREDENTIAL,
        raw.api.admin_key_file.as_deref(),
        Some("ANTHROPIC_ADMIN_KEY"),
        raw.api.admin_key,
    );
    let page_size = raw.api.page_size.unwrap_or(1000);
    if !(1..=1000).contains(&page_size) {
        check.problem(
            "api.page_size",
            format!("{page_size} must be between 1 and 1000"),
        );
    }
    let max_in_flight = raw.api.max_in_flight.unwrap_or(4);
    if max_in_flight == 0 || max_in_flight > 64 {
        check.problem(
            "api.max_in_flight",
            format!("{max_in_flight} must be between 1 and 64"),
        );
    }
    let requests_per_second = match raw.api.requests_per_second {
        None => Some(20.0),
        Some(0.0) => None,
        Some(v) if v > 0.0 && v.is_finite() => Some(v),
        Some(v) => {
            check.problem(
                "api.requests_per_second",
                format!("{v} must be positive (0 for no limit)"),
            );
            None
        }
    };
    let api = ApiConfig {
        base_url,
        admin_key,
        anthropic_version: raw
            .api
            .anthropic_version
            .unwrap_or_else(|| "2023-06-01".to_owned()),
        connect_timeout: check.duration(
            "api.connect_timeout",
            raw.api.connect_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        request_timeout: check.duration(
            "api.request_timeout",
            raw.api.request_timeout.as_deref(),
            Duration::from_secs(30),
        ),
        total_deadline: check.duration(
            "api.total_deadline",
            raw.api.total_deadline.as_deref(),
            Duration::from_secs(120),
        ),
        max_retries: raw.api.max_retries.unwrap_or(4),
        requests_per_second,
        max_in_flight,
        page_size,
    };

    // [store]
    let store = StoreConfig {
        path: raw
            .store
            .path
            .unwrap_or_else(|| PathBuf::from("/var/lib/orgwarden/orgwarden.db")),
        keep_days: raw.store.keep_days.unwrap_or(400),
    };
    if store.keep_days == 0 {
        check.problem("store.keep_days", "must be at least 1");
    }

    // [log]
    let level = raw.log.level.unwrap_or_else(|| "info".to_owned());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        check.problem(
            "log.level",
            format!("{level:?} is not a level or filter (error, warn, info, debug, trace)"),
        );
    }
    let format = match raw.log.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            check.problem("log.format", format!("{other:?} is not one of text, json"));
            LogFormat::Text
        }
    };
    let log = LogConfig { level, format };

    // [rules.*]
    let r = raw.rules;
    let stale_invites = StaleInvitesRule {
        enabled: r.stale_invites.enabled.unwrap_or(true),
        severity: check.severity(
            "rules.stale_invites.severity",
            r.stale_invites.severity.as_deref(),
            Severity::Low,
        ),
        max_pending_days: r.stale_invites.max_pending_days.unwrap_or(7),
        remediate: r.stale_invites.remediate.unwrap_or(false),
    };
    let departed_domains = DepartedDomainsRule {
        enabled: r.departed_domains.enabled.unwrap_or(true),
        severity: check.severity(
            "rules.departed_domains.severity",
            r.departed_domains.severity.as_deref(),
            Severity::High,
        ),
        departed_domains: check.domains(
            "rules.departed_domains.departed_domains",
            r.departed_domains.departed_domains.items(),
        ),
        allowed_domains: check.domains(
            "rules.departed_domains.allowed_domains",
            r.departed_domains.allowed_domains.items(),
        ),
        remediate: r.departed_domains.remediate.unwrap_or(false),
        remove_members: r.departed_domains.remove_members.unwrap_or(false),
    };
    let offboarding_roster = RosterRule {
        enabled: r.offboarding_roster.enabled.unwrap_or(true),
        severity: check.severity(
            "rules.offboarding_roster.severity",
            r.offboarding_roster.severity.as_deref(),
            Severity::High,
        ),
        roster_csv: r.offboarding_roster.roster_csv,
        email_column: r
            .offboarding_roster
            .email_column
            .unwrap_or_else(|| "email".to_owned()),
        last_day_column: r
            .offboarding_roster
            .last_day_column
            .unwrap_or_else(|| "last_day".to_owned()),
        remediate: r.offboarding_roster.remediate.unwrap_or(false),
        remove_members: r.offboarding_roster.remove_members.unwrap_or(false),
    };
    let orphaned_keys = OrphanedKeysRule {
        enabled: r.orphaned_keys.enabled.unwrap_or(true),
        severity: check.severity(
            "rules.orphaned_keys.severity",
            r.orphaned_keys.severity.as_deref(),
            Severity::High,
        ),
        remediate: r.orphaned_keys.remediate.unwrap_or(false),
    };
    let excess_admins = ExcessAdminsRule {
        enabled: r.excess_admins.enabled.unwrap_or(true),
        severity: check.severity(
            "rules.excess_admins.severity",
            r.excess_admins.severity.as_deref(),
            Severity::Medium,
        ),
        max_admins: r.excess_admins.max_admins.unwrap_or(3),
        max_workspace_admins: r.excess_admins.max_workspace_admins.unwrap_or(3),
    };
    let privilege_escalation = PrivilegeEscalationRule {
        enabled: r.privilege_escalation.enabled.unwrap_or(true),
        severity: check.severity(
            "rules.privilege_escalation.severity",
            r.privilege_escalation.severity.as_deref(),
            Severity::High,
        ),
    };
    let rules = RulesConfig {
        stale_invites,
        departed_domains,
        offboarding_roster,
        orphaned_keys,
        excess_admins,
        privilege_escalation,
    };

    // [[exemptions]]
    let mut exemptions = Vec::new();
    for (idx, raw_exemption) in raw.exemptions.into_iter().enumerate() {
        let key = format!("exemptions[{idx}]");
        let given: Vec<ExemptionMatch> = [
            raw_exemption
                .email
                .map(|e| ExemptionMatch::Email(e.trim().to_lowercase())),
            raw_exemption.key_id.map(ExemptionMatch::KeyId),
            raw_exemption.key_name.map(ExemptionMatch::KeyName),
        ]
        .into_iter()
        .flatten()
        .collect();
        let reason = raw_exemption.reason.unwrap_or_default();
        if reason.trim().is_empty() {
            check.problem(
                &format!("{key}.reason"),
                "is required: say why this is exempt",
            );
        }
        let until = raw_exemption.until.as_deref().and_then(|text| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| {
                    check.problem(
                        &format!("{key}.until"),
                        format!("{text:?} is not a date YYYY-MM-DD"),
                    )
                })
                .ok()
        });
        match given.len() {
            1 => exemptions.push(Exemption {
                matches: given.into_iter().next().expect("one element"),
                reason,
                until,
            }),
            0 => check.problem(&key, "needs one of email, key_id, key_name"),
            _ => check.problem(&key, "give only one of email, key_id, key_name"),
        }
    }

    // [remediation]
    let mode = match raw.remediation.mode.as_deref() {
        None | Some("dry-run") => RemediationMode::DryRun,
        Some("off") => RemediationMode::Off,
        Some("enforce") => RemediationMode::Enforce,
        Some(other) => {
            check.problem(
                "remediation.mode",
                format!("{other:?} is not one of off, dry-run, enforce"),
            );
            RemediationMode::DryRun
        }
    };
    let remediation = RemediationConfig {
        mode,
        max_snapshot_age: check.duration(
            "remediation.max_snapshot_age",
            raw.remediation.max_snapshot_age.as_deref(),
            Duration::from_secs(7200),
        ),
        min_consecutive_snapshots: raw
            .remediation
            .min_consecutive_snapshots
            .unwrap_or(2)
            .max(1),
        max_actions_per_run: raw.remediation.max_actions_per_run.unwrap_or(25),
        max_fraction: check.fraction(
            "remediation.max_fraction",
            raw.remediation.max_fraction,
            0.10,
        ),
        max_population_drop: check.fraction(
            "remediation.max_population_drop",
            raw.remediation.max_population_drop,
            0.20,
        ),
    };

    // [mail]
    let mail = validate_mail(raw.mail, env, &mut check);

    // [report]
    let report = ReportConfig {
        out_dir: raw
            .report
            .out_dir
            .unwrap_or_else(|| PathBuf::from("/var/lib/orgwarden/reports")),
        top_findings: raw.report.top_findings.unwrap_or(20),
    };

    // [schedule]
    let timezone = match raw.schedule.timezone.as_deref() {
        None => chrono_tz::UTC,
        Some(name) => name.parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
            check.problem(
                "schedule.timezone",
                format!("{name:?} is not an IANA time zone (e.g. UTC, Europe/Paris)"),
            );
            chrono_tz::UTC
        }),
    };
    let schedule = ScheduleConfig {
        timezone,
        audit: check.cron("schedule.audit", raw.schedule.audit, "0 0 * * * *"),
        report: check.cron("schedule.report", raw.schedule.report, "0 0 8 * * Mon"),
        outbox: check.cron("schedule.outbox", raw.schedule.outbox, "0 */5 * * * *"),
        run_on_start: raw.schedule.run_on_start.unwrap_or(true),
        shutdown_timeout: check.duration(
            "schedule.shutdown_timeout",
            raw.schedule.shutdown_timeout.as_deref(),
            Duration::from_secs(60),
        ),
    };

    Config {
        api,
        store,
        log,
        rules,
        exemptions,
        remediation,
        mail,
        report,
        schedule,
    }
}

fn validate_mail(raw: RawMail, env: &Environment, check: &mut Check<'_>) -> Option<MailConfig> {
    let to_items = raw.to.items();
    let configured = !to_items.is_empty() || raw.from.is_some() || raw.host.is_some();
    if !configured {
        return None;
    }
    let to: Vec<_> = to_items
        .iter()
        .filter_map(|item| check.mailbox("mail.to", item))
        .collect();
    if to_items.is_empty() {
        check.problem(
            "mail.to",
            "at least one recipient is needed when [mail] is configured",
        );
    }
    let from = match raw.from.as_deref() {
        Some(text) => check.mailbox("mail.from", text),
        None => {
            check.problem("mail.from", "is required when [mail] is configured");
            None
        }
    };
    let transport = match raw.transport.as_deref() {
        None | Some("smtp") => {
            let host = raw.host.clone().unwrap_or_default();
            if host.is_empty() {
                check.problem("mail.host", "is required for transport = \"smtp\"");
            }
            let tls = match raw.tls.as_deref() {
                None | Some("starttls") => TlsMode::StartTls,
                Some("tls") => TlsMode::Tls,
                Some("none") => TlsMode::None,
                Some(other) => {
                    check.problem(
                        "mail.tls",
                        format!("{other:?} is not one of starttls, tls, none"),
                    );
                    TlsMode::StartTls
                }
            };
            if tls == TlsMode::None && !is_loopback_host(&host) {
                check.problem("mail.tls", "\"none\" is only allowed for a loopback mail server (127.0.0.1, ::1, localhost)");
            }
            let port = raw.port.unwrap_or(match tls {
                TlsMode::StartTls => 587,
                TlsMode::Tls => 465,
                TlsMode::None => 25,
            });
            let password = read_secret(
                check,
                "mail.password",
                env,
                SMTP_PASSWORD_CREDENTIAL,
                raw.password_file.as_deref(),
                Some("ORGWARDEN_SMTP_PASSWORD"),
                raw.password,
            );
            if password.is_some() && raw.username.is_none() {
                check.problem("mail.username", "is required when a password is given");
            }
            if raw.ca_file.is_some() && tls == TlsMode::None {
                check.problem(
                    "mail.ca_file",
                    "is only used with tls = \"starttls\" or \"tls\"",
                );
            }
            MailTransport::Smtp {
                host,
                port,
                tls,
                username: raw.username,
                password,
                timeout: check.duration(
                    "mail.timeout",
                    raw.timeout.as_deref(),
                    Duration::from_secs(30),
                ),
                ca_file: raw.ca_file,
            }
        }
        Some("file") => match raw.dir {
            Some(dir) => MailTransport::File { dir },
            None => {
                check.problem("mail.dir", "is required for transport = \"file\"");
                MailTransport::File {
                    dir: PathBuf::new(),
                }
            }
        },
        Some(other) => {
            check.problem(
                "mail.transport",
                format!("{other:?} is not one of smtp, file"),
            );
            MailTransport::File {
                dir: PathBuf::new(),
            }
        }
    };
    Some(MailConfig {
        from: from?,
        to,
        transport,
    })
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The keys of `config.toml.example`, used by a test to keep the example complete.
pub fn known_keys() -> BTreeSet<String> {
    fn walk(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let Some(map) = value.as_object() {
            for (key, sub) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                if sub.is_object() {
                    walk(sub, &path, out);
                } else {
                    out.insert(path);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(
        &serde_json::to_value(RawConfig::default()).unwrap_or_default(),
        "",
        &mut out,
    );
    out.remove("exemptions");
    let exemption = serde_json::to_value(RawExemption::default()).unwrap_or_default();
    walk(&exemption, "exemptions", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn every_problem_is_listed_at_once_with_its_key() {
        let text = r#"
            [api]
            base_url = "http://api.example.com"
            page_size = 5000
            connect_timout = "10s"
            [store]
            keep_days = "many"
            [log]
            format = "xml"
            [rules.stale_invites]
            severity = "urgent"
            [rules.departed_domains]
            departed_domains = ["ok.example", "bad domain"]
            [[exemptions]]
            email = "a@example.com"
            [remediation]
            mode = "yolo"
            max_fraction = 2.0
            [schedule]
            audit = "every hour"
            timezone = "Mars/Olympus"
        "#;
        let error = Config::from_toml(text, &env(&[])).unwrap_err();
        let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
        for want in [
            "api.base_url",
            "api.page_size",
            "api.connect_timout",
            "store",
            "log.format",
            "rules.stale_invites.severity",
            "rules.departed_domains.departed_domains",
            "exemptions[0].reason",
            "remediation.mode",
            "remediation.max_fraction",
            "schedule.audit",
            "schedule.timezone",
        ] {
            assert!(keys.contains(&want), "missing {want} in {keys:?}");
        }
        let text = error.to_string();
        assert!(
            text.contains("api.base_url: must be https unless the host is loopback"),
            "{text}"
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let text = "[api]\nbase_url = \"https://file.example\"\nmax_retries = 1\n";
        let (config, _) = Config::from_toml(
            text,
            &env(&[
                ("ORGWARDEN__API__BASE_URL", "http://127.0.0.1:9999"),
                ("ORGWARDEN__API__MAX_RETRIES", "7"),
                (
                    "ORGWARDEN__RULES__DEPARTED_DOMAINS__DEPARTED_DOMAINS",
                    "a.example, B.Example",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(config.api.base_url.as_str(), "http://127.0.0.1:9999/");
        assert_eq!(config.api.max_retries, 7);
        assert_eq!(
            config.rules.departed_domains.departed_domains,
            vec!["a.example", "b.example"]
        );
    }

    #[test]
    fn unknown_environment_key_is_a_problem() {
        let error = Config::from_toml("", &env(&[("ORGWARDEN__API__BASE_URLL", "x")])).unwrap_err();
        assert_eq!(error.problems[0].key, "api.base_urll");
    }

    #[test]
    fn secret_sources_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ADMIN_KEY_CREDENTIAL), "from-credentials\n").unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "from-file").unwrap();
        let text = format!(
            "[api]\nadmin_key_file = {:?}\nadmin_key = \"inline\"\n",
            key_file.display().to_string()
        );
        let creds = dir.path().display().to_string();
        let key = |vars: &[(&str, &str)], text: &str| {
            Config::from_toml(text, &env(vars))
                .unwrap()
                .0
                .api
                .admin_key
                .map(|k| k.expose_secret().to_owned())
        };
        let all = [
            ("CREDENTIALS_DIRECTORY", creds.as_str()),
            ("ANTHROPIC_ADMIN_KEY", "from-env"),
        ];
        assert_eq!(key(&all, &text).as_deref(), Some("from-credentials"));
        assert_eq!(key(&all[1..], &text).as_deref(), Some("from-file"));
        assert_eq!(
            key(&all[1..], "[api]\nadmin_key = \"inline\"\n").as_deref(),
            Some("from-env")
        );
        assert_eq!(
            key(&[], "[api]\nadmin_key = \"inline\"\n").as_deref(),
            Some("inline")
        );
        assert_eq!(key(&[], ""), None);
    }

    #[test]
    fn unreadable_secret_file_names_the_path_not_the_secret() {
        let error = Config::from_toml(
            "[api]\nadmin_key_file = \"/nonexistent/orgwarden-key\"\n",
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(error.problems[0].key, "api.admin_key_file");
        assert!(error.problems[0]
            .message
            .contains("/nonexistent/orgwarden-key"));
    }

    #[test]
    fn inline_secret_in_readable_file_warns_and_debug_hides_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[api]\nadmin_key = \"sk-ant-admin01-topsecret\"\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loaded = load(Some(&path), &env(&[])).unwrap();
        assert!(loaded
            .warnings
            .iter()
            .any(|w| w.starts_with("api.admin_key:")));
        assert!(!format!("{:?}", loaded.config).contains("topsecret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let loaded = load(Some(&path), &env(&[])).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[store]\npath = \"data/o.db\"\n").unwrap();
        let loaded = load(Some(&path), &env(&[])).unwrap();
        assert_eq!(loaded.config.store.path, dir.path().join("data/o.db"));
    }

    #[test]
    fn example_config_is_valid_and_complete() {
        let example = include_str!("../config.toml.example");
        let (config, _) = Config::from_toml(example, &env(&[])).unwrap();
        assert_eq!(config.remediation.mode, RemediationMode::DryRun);
        // Every key of the schema appears in the example, commented out or not.
        for key in known_keys() {
            let leaf = key.rsplit('.').next().unwrap();
            assert!(
                example.contains(&format!("{leaf} =")),
                "config.toml.example does not mention {key}"
            );
        }
    }

    #[test]
    fn mail_section_validation() {
        let error = Config::from_toml(
            "[mail]\nto = [\"not an address\"]\nhost = \"smtp.example.com\"\ntls = \"none\"\n",
            &env(&[]),
        )
        .unwrap_err();
        let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, vec!["mail.to", "mail.from", "mail.tls"]);
        let (config, _) = Config::from_toml(
            "[mail]\nfrom = \"o@example.com\"\nto = \"a@example.com,b@example.com\"\nhost = \"127.0.0.1\"\ntls = \"none\"\n",
            &env(&[]),
        )
        .unwrap();
        let mail = config.mail.unwrap();
        assert_eq!(mail.to.len(), 2);
        assert!(matches!(
            mail.transport,
            MailTransport::Smtp { port: 25, .. }
        ));
    }

    #[test]
    fn mail_ca_file_is_relative_to_the_file_and_needs_tls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[mail]\nfrom = \"o@example.com\"\nto = \"a@example.com\"\nhost = \"smtp.example.com\"\nca_file = \"ca.pem\"\n",
        )
        .unwrap();
        let loaded = load(Some(&path), &env(&[])).unwrap();
        match loaded.config.mail.unwrap().transport {
            MailTransport::Smtp { ca_file, .. } => {
                assert_eq!(ca_file, Some(dir.path().join("ca.pem")))
            }
            MailTransport::File { .. } => panic!("smtp expected"),
        }
        let error = Config::from_toml(
            "[mail]\nfrom = \"o@example.com\"\nto = \"a@example.com\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nca_file = \"ca.pem\"\n",
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(error.problems[0].key, "mail.ca_file");
    }

    #[test]
    fn durations_and_domains() {
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(
            normalize_domain("Bücher.Example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(
            normalize_domain("@Example.COM.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_domain("a b"), None);
    }
}
