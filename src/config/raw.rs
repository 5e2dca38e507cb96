//! The raw configuration: every section exactly as written, before any value is checked.
//!
//! Each section is a `deny_unknown_fields` struct of `Option`s (no `#[serde(flatten)]`, which
//! `config` cannot feed strings into and which `deny_unknown_fields` forbids), so that a missing
//! key falls back to its default in validation and a present one is checked there. The structs'
//! serialised defaults double as the schema's skeleton for the unknown-key walker and
//! [`known_keys`]. Their names appear in type errors (`expected struct RawApi`), so they are part
//! of `check-config`'s output.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A list written either as a TOML array or, from the environment, as `a,b,c`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum StringList {
    List(Vec<String>),
    Text(String),
}

impl Default for StringList {
    fn default() -> Self {
        StringList::List(Vec::new())
    }
}

impl StringList {
    pub(super) fn items(&self) -> Vec<String> {
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
pub(super) struct RawConfig {
    pub(super) api: RawApi,
    pub(super) store: RawStore,
    pub(super) log: RawLog,
    pub(super) rules: RawRules,
    pub(super) exemptions: Vec<RawExemption>,
    pub(super) remediation: RawRemediation,
    pub(super) mail: RawMail,
    pub(super) report: RawReport,
    pub(super) schedule: RawSchedule,
    pub(super) metrics: RawMetrics,
    pub(super) events: RawEvents,
    pub(super) alerts: RawAlerts,
    pub(super) usage: RawUsage,
    pub(super) directories: Vec<RawDirectory>,
}

/// One `[[directories]]` entry: the common keys, then every source type's keys side by side
/// (validation names a key given for the wrong type).
#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawDirectory {
    pub(super) name: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) domains: StringList,
    pub(super) schedule: Option<String>,
    pub(super) enabled: Option<bool>,
    // okta
    pub(super) org_url: Option<String>,
    pub(super) api_token: Option<String>,
    pub(super) api_token_file: Option<PathBuf>,
    pub(super) client_id: Option<String>,
    pub(super) private_key_file: Option<PathBuf>,
    pub(super) key_id: Option<String>,
    pub(super) app_id: Option<String>,
    pub(super) search: Option<String>,
    // entra
    pub(super) tenant_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) client_secret_file: Option<PathBuf>,
    pub(super) graph_url: Option<String>,
    pub(super) login_url: Option<String>,
    pub(super) service_principal_id: Option<String>,
    // google
    pub(super) service_account_key_file: Option<PathBuf>,
    pub(super) subject: Option<String>,
    pub(super) customer: Option<String>,
    pub(super) api_url: Option<String>,
    // ldap
    pub(super) url: Option<String>,
    pub(super) starttls: Option<bool>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) bind_dn: Option<String>,
    pub(super) bind_password: Option<String>,
    pub(super) bind_password_file: Option<PathBuf>,
    pub(super) base_dn: Option<String>,
    pub(super) filter: Option<String>,
    pub(super) page_size: Option<u32>,
    pub(super) email_attributes: StringList,
    pub(super) disabled_rule: Option<RawDisabledRule>,
    // csv
    pub(super) path: Option<PathBuf>,
}

/// `disabled_rule`: a named rule, or `{ attribute, value }`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum RawDisabledRule {
    Named(String),
    Attribute {
        attribute: Option<String>,
        value: Option<String>,
    },
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawAlerts {
    pub(super) min_severity: Option<String>,
    pub(super) failed_runs: Option<u32>,
    pub(super) max_per_message: Option<usize>,
    pub(super) channels: Vec<RawChannel>,
    pub(super) owner_notice: RawOwnerNotice,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawOwnerNotice {
    pub(super) enabled: Option<bool>,
    pub(super) contact: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawChannel {
    pub(super) name: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) url: Option<String>,
    pub(super) url_file: Option<PathBuf>,
    pub(super) url_env: Option<String>,
    pub(super) secret: Option<String>,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) secret_env: Option<String>,
    pub(super) to: StringList,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawApi {
    pub(super) base_url: Option<String>,
    pub(super) admin_key: Option<String>,
    pub(super) admin_key_file: Option<PathBuf>,
    pub(super) anthropic_version: Option<String>,
    pub(super) connect_timeout: Option<String>,
    pub(super) request_timeout: Option<String>,
    pub(super) total_deadline: Option<String>,
    pub(super) max_retries: Option<u32>,
    pub(super) requests_per_second: Option<f64>,
    pub(super) max_in_flight: Option<usize>,
    pub(super) page_size: Option<u32>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) path: Option<PathBuf>,
    pub(super) keep_days: Option<u32>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Option<String>,
    pub(super) format: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRules {
    pub(super) stale_invites: RawStaleInvites,
    pub(super) departed_domains: RawDepartedDomains,
    pub(super) offboarding_roster: RawRoster,
    pub(super) orphaned_keys: RawOrphanedKeys,
    pub(super) excess_admins: RawExcessAdmins,
    pub(super) privilege_escalation: RawPrivilegeEscalation,
    pub(super) dormant_keys: RawDormantKeys,
    pub(super) dormant_members: RawDormantMembers,
    pub(super) key_hygiene: RawKeyHygiene,
    pub(super) directory_departed: RawDirectoryDeparted,
    pub(super) directory_unknown: RawDirectoryUnknown,
    pub(super) assignment_drift: RawAssignmentDrift,
}

impl RawConfig {
    /// Makes every relative path relative to `dir`, the configuration file's directory. Done on
    /// the raw form so that validation reads secret files from the same place.
    pub(super) fn rebase_paths(&mut self, dir: &Path) {
        let rebase = |path: &mut Option<PathBuf>| {
            if let Some(path) = path.as_mut().filter(|p| p.is_relative()) {
                *path = dir.join(&*path);
            }
        };
        rebase(&mut self.api.admin_key_file);
        rebase(&mut self.store.path);
        rebase(&mut self.rules.offboarding_roster.roster_csv);
        rebase(&mut self.mail.password_file);
        rebase(&mut self.mail.ca_file);
        rebase(&mut self.mail.dir);
        rebase(&mut self.report.out_dir);
        rebase(&mut self.metrics.textfile);
        if self.events.path.as_deref() != Some(std::path::Path::new("-")) {
            rebase(&mut self.events.path);
        }
        for channel in &mut self.alerts.channels {
            rebase(&mut channel.url_file);
            rebase(&mut channel.secret_file);
        }
        for source in &mut self.directories {
            rebase(&mut source.api_token_file);
            rebase(&mut source.private_key_file);
            rebase(&mut source.client_secret_file);
            rebase(&mut source.service_account_key_file);
            rebase(&mut source.ca_file);
            rebase(&mut source.bind_password_file);
            rebase(&mut source.path);
        }
    }
}

/// The keys every `[rules.*]` section shares, as written.
pub(super) struct RawShared<'a> {
    pub(super) enabled: Option<bool>,
    pub(super) severity: Option<&'a str>,
    /// Always `None` for a rule that cannot remediate (the key does not exist there).
    pub(super) remediate: Option<bool>,
}

/// Declares the raw form of one `[rules.*]` section: the keys every rule shares (`enabled`,
/// `severity`, and `remediate` for a rule marked `remediable`), then the rule's own keys, plus a
/// `shared()` accessor that validation reads the shared keys through.
///
/// The shared keys are spliced in rather than kept in a nested struct because
/// `#[serde(flatten)]` cannot be combined with `deny_unknown_fields`, and the `config` crate
/// cannot turn environment strings into numbers or booleans inside a flattened struct.
macro_rules! raw_rule {
    (@struct $name:ident { $($field:ident: $ty:ty,)* }) => {
        #[derive(Default, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub(super) struct $name {
            pub(super) enabled: Option<bool>,
            pub(super) severity: Option<String>,
            $(pub(super) $field: $ty,)*
        }
    };
    ($name:ident, remediable { $($field:ident: $ty:ty,)* }) => {
        raw_rule!(@struct $name { remediate: Option<bool>, $($field: $ty,)* });

        impl $name {
            pub(super) fn shared(&self) -> RawShared<'_> {
                RawShared {
                    enabled: self.enabled,
                    severity: self.severity.as_deref(),
                    remediate: self.remediate,
                }
            }
        }
    };
    ($name:ident { $($field:ident: $ty:ty,)* }) => {
        raw_rule!(@struct $name { $($field: $ty,)* });

        impl $name {
            pub(super) fn shared(&self) -> RawShared<'_> {
                RawShared {
                    enabled: self.enabled,
                    severity: self.severity.as_deref(),
                    remediate: None,
                }
            }
        }
    };
}

// The struct names appear in type errors (`expected struct RawStaleInvites`).
raw_rule!(RawStaleInvites, remediable {
    max_pending_days: Option<u32>,
});
raw_rule!(RawDepartedDomains, remediable {
    departed_domains: StringList,
    allowed_domains: StringList,
    remove_members: Option<bool>,
});
raw_rule!(RawRoster, remediable {
    roster_csv: Option<PathBuf>,
    email_column: Option<String>,
    last_day_column: Option<String>,
    remove_members: Option<bool>,
});
raw_rule!(RawOrphanedKeys, remediable {});
raw_rule!(RawExcessAdmins {
    max_admins: Option<u32>,
    max_workspace_admins: Option<u32>,
});
raw_rule!(RawPrivilegeEscalation {});
raw_rule!(RawDormantKeys, remediable {
    max_idle_days: Option<u32>,
});
raw_rule!(RawDormantMembers {
    max_idle_days: Option<u32>,
});
raw_rule!(RawKeyHygiene {
    max_key_age_days: Option<u32>,
    flag_org_scoped: Option<bool>,
});
raw_rule!(RawDirectoryDeparted, remediable {
    remove_members: Option<bool>,
});
raw_rule!(RawDirectoryUnknown {});
raw_rule!(RawAssignmentDrift {});

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawExemption {
    pub(super) email: Option<String>,
    pub(super) key_id: Option<String>,
    pub(super) key_name: Option<String>,
    pub(super) reason: Option<String>,
    pub(super) until: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRemediation {
    pub(super) mode: Option<String>,
    pub(super) max_snapshot_age: Option<String>,
    pub(super) min_consecutive_snapshots: Option<u32>,
    pub(super) max_actions_per_run: Option<u32>,
    pub(super) max_fraction: Option<f64>,
    pub(super) max_population_drop: Option<f64>,
    pub(super) baseline_window: Option<String>,
    pub(super) min_finding_age: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawMail {
    pub(super) from: Option<String>,
    pub(super) to: StringList,
    pub(super) transport: Option<String>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) tls: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) timeout: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) dir: Option<PathBuf>,
    pub(super) max_message_bytes: Option<u64>,
    pub(super) zip_over_bytes: Option<u64>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawReport {
    pub(super) out_dir: Option<PathBuf>,
    pub(super) top_findings: Option<usize>,
    pub(super) csv_bom: Option<bool>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawSchedule {
    pub(super) timezone: Option<String>,
    pub(super) audit: Option<String>,
    pub(super) report: Option<String>,
    pub(super) outbox: Option<String>,
    pub(super) run_on_start: Option<bool>,
    pub(super) shutdown_timeout: Option<String>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
    pub(super) allow_remote: Option<bool>,
    pub(super) textfile: Option<PathBuf>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawEvents {
    pub(super) path: Option<PathBuf>,
    pub(super) max_bytes: Option<u64>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawUsage {
    pub(super) enabled: Option<bool>,
    pub(super) backfill_days: Option<i64>,
}

/// The schema's skeleton: every section and key, each with its default (`null` for most).
pub(super) fn skeleton() -> serde_json::Value {
    serde_json::to_value(RawConfig::default()).unwrap_or_default()
}

/// The skeleton of one `[[exemptions]]` entry (the array itself is empty in [`skeleton`]).
pub(super) fn exemption_skeleton() -> serde_json::Value {
    serde_json::to_value(RawExemption::default()).unwrap_or_default()
}

/// The skeleton of one `[[alerts.channels]]` entry.
pub(super) fn channel_skeleton() -> serde_json::Value {
    serde_json::to_value(RawChannel::default()).unwrap_or_default()
}

/// The skeleton of one `[[directories]]` entry.
pub(super) fn directory_skeleton() -> serde_json::Value {
    serde_json::to_value(RawDirectory::default()).unwrap_or_default()
}

/// Every key of the schema (`api.base_url`, ..., `exemptions.reason`), used by a test to keep
/// `config.toml.example` complete.
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
    walk(&skeleton(), "", &mut out);
    out.remove("exemptions");
    walk(&exemption_skeleton(), "exemptions", &mut out);
    out.remove("alerts.channels");
    walk(&channel_skeleton(), "alerts.channels", &mut out);
    out.remove("directories");
    walk(&directory_skeleton(), "directories", &mut out);
    out
}
