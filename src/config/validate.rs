//! Validation: the raw sections into typed values, one function per section.
//!
//! Every function takes its raw section and a [`Check`], the shared list of problems, and always
//! returns a value (a default where the input was wrong) so that the next section is checked
//! too: the caller sees every problem at once, each naming its key, in the order of the file's
//! sections. A configuration with any problem is rejected as a whole.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use secrecy::SecretString;
use url::Url;

use super::parse::{normalize_domain, parse_cron, parse_duration};
use super::raw::{
    RawAlerts, RawApi, RawConfig, RawEvents, RawExemption, RawLog, RawMail, RawMetrics,
    RawRemediation, RawReport, RawRules, RawSchedule, RawShared, RawStore, RawUsage,
};
use super::secrets::{SecretSources, ADMIN_KEY_CREDENTIAL, SMTP_PASSWORD_CREDENTIAL};
use super::{
    AlertChannel, AlertsConfig, ApiConfig, ChannelKind, Config, DepartedDomainsRule,
    DormantKeysRule, DormantMembersRule, Environment, EventsConfig, EventsPath, ExcessAdminsRule,
    Exemption, ExemptionMatch, KeyHygieneRule, LogConfig, LogFormat, MailConfig, MailTransport,
    MetricsConfig, OrphanedKeysRule, PrivilegeEscalationRule, Problem, RemediationConfig,
    RemediationMode, ReportConfig, RosterRule, RulesConfig, ScheduleConfig, Severity,
    StaleInvitesRule, StoreConfig, TlsMode, UsageConfig, DEFAULT_EVENTS_MAX_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_ZIP_OVER_BYTES, MAX_MESSAGE_BYTES_RANGE,
};
use crate::config::check_base_url;

/// Validates every section, pushing each problem found into `problems`.
pub(super) fn validate(raw: RawConfig, env: &Environment, problems: &mut Vec<Problem>) -> Config {
    let raw_mail_configured =
        !raw.mail.to.items().is_empty() || raw.mail.from.is_some() || raw.mail.host.is_some();
    let check = &mut Check { problems };
    Config {
        api: api(raw.api, env, check),
        store: store(raw.store, check),
        log: log(raw.log, check),
        rules: rules(raw.rules, check),
        exemptions: exemptions(raw.exemptions, check),
        remediation: remediation(raw.remediation, check),
        mail: mail(raw.mail, env, check),
        report: report(raw.report),
        schedule: schedule(raw.schedule, check),
        metrics: metrics(raw.metrics, check),
        events: events(raw.events, check),
        alerts: alerts(raw.alerts, env, raw_mail_configured, check),
        usage: usage(raw.usage, check),
        directories: super::directory_check::directories(raw.directories, env, check),
    }
}

fn alerts(
    raw: RawAlerts,
    env: &Environment,
    mail_configured: bool,
    check: &mut Check<'_>,
) -> AlertsConfig {
    use secrecy::ExposeSecret;
    let min_severity = match raw.min_severity.as_deref() {
        None => Severity::High,
        Some(text) => Severity::parse(text).unwrap_or_else(|| {
            check.problem(
                "alerts.min_severity",
                format!("{text:?} is not one of low, medium, high, critical"),
            );
            Severity::High
        }),
    };
    let failed_runs = check.at_least_one("alerts.failed_runs", raw.failed_runs, 2);
    let max_per_message = match raw.max_per_message {
        None => 10,
        Some(0) => {
            check.problem(
                "alerts.max_per_message",
                "0 is not allowed: it must be at least 1",
            );
            10
        }
        Some(n) => n,
    };
    let mut channels: Vec<AlertChannel> = Vec::new();
    for (idx, c) in raw.channels.into_iter().enumerate() {
        let key = |field: &str| format!("alerts.channels[{idx}].{field}");
        let name = c.name.clone().unwrap_or_default();
        if name.trim().is_empty() {
            check.problem(&key("name"), "is required");
        } else if !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            check.problem(
                &key("name"),
                format!("{name:?} may only hold letters, digits, '-' and '_'"),
            );
        } else if channels.iter().any(|other| other.name == name) {
            check.problem(&key("name"), format!("{name:?} is used by another channel"));
        }
        let kind = match c.kind.as_deref() {
            Some("webhook") => Some(ChannelKind::Webhook),
            Some("slack") => Some(ChannelKind::Slack),
            Some("teams") => Some(ChannelKind::Teams),
            Some("email") => Some(ChannelKind::Email),
            Some(other) => {
                check.problem(
                    &key("type"),
                    format!("{other:?} is not one of webhook, slack, teams, email"),
                );
                None
            }
            None => {
                check.problem(&key("type"), "is required (webhook, slack, teams or email)");
                None
            }
        };
        let credential = format!("alerts_{name}_url");
        let url = check.secret(
            SecretSources {
                key: &key("url"),
                credential: &credential,
                file: c.url_file.as_deref(),
                env_var: c.url_env.as_deref(),
                inline: c.url,
            },
            env,
        );
        let secret_credential = format!("alerts_{name}_secret");
        let secret = check.secret(
            SecretSources {
                key: &key("secret"),
                credential: &secret_credential,
                file: c.secret_file.as_deref(),
                env_var: c.secret_env.as_deref(),
                inline: c.secret,
            },
            env,
        );
        let to_items = c.to.items();
        let to: Vec<_> = to_items
            .iter()
            .filter_map(|item| check.mailbox(&key("to"), item))
            .collect();
        match kind {
            Some(ChannelKind::Email) => {
                if !mail_configured {
                    check.problem(
                        &key("type"),
                        "\"email\" sends through [mail]: configure [mail] (from, transport)",
                    );
                }
                if to_items.is_empty() {
                    check.problem(
                        &key("to"),
                        "at least one recipient is needed for type = \"email\"",
                    );
                }
                if url.is_some() {
                    check.problem(&key("url"), "is not used by type = \"email\"");
                }
            }
            Some(kind) => {
                match &url {
                    // The URL is a secret: a problem never quotes it.
                    Some(url) => match Url::parse(url.expose_secret()) {
                        Ok(parsed) => {
                            if let Err(why) = check_base_url(&parsed) {
                                check.problem(&key("url"), why);
                            }
                        }
                        Err(error) => check.problem(&key("url"), format!("is not a URL: {error}")),
                    },
                    None => check.problem(
                        &key("url"),
                        "is required (url, url_file, url_env or a credential)",
                    ),
                }
                if !to_items.is_empty() {
                    check.problem(
                        &key("to"),
                        format!("is only used by type = \"email\", not {:?}", kind.as_str()),
                    );
                }
                if secret.is_some() && kind != ChannelKind::Webhook {
                    check.problem(&key("secret"), "is only used by type = \"webhook\"");
                }
            }
            None => {}
        }
        if let Some(kind) = kind {
            channels.push(AlertChannel {
                name,
                kind,
                url,
                secret,
                to,
            });
        }
    }
    let enabled = raw.owner_notice.enabled.unwrap_or(false);
    let contact = raw.owner_notice.contact.unwrap_or_default();
    if enabled {
        if !mail_configured {
            check.problem(
                "alerts.owner_notice.enabled",
                "owner notices are mailed through [mail]: configure [mail] (from, transport)",
            );
        }
        if contact.trim().is_empty() {
            check.problem(
                "alerts.owner_notice.contact",
                "is required when owner notices are enabled (how an owner asks for an exemption)",
            );
        }
    }
    AlertsConfig {
        min_severity,
        failed_runs,
        max_per_message,
        channels,
        owner_notice: crate::config::OwnerNoticeConfig {
            enabled,
            contact: contact.trim().to_owned(),
        },
    }
}

fn api(raw: RawApi, env: &Environment, check: &mut Check<'_>) -> ApiConfig {
    let base_text = raw
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
    let admin_key = check.secret(
        SecretSources {
            key: "api.admin_key",
            credential: ADMIN_KEY_CREDENTIAL,
            file: raw.admin_key_file.as_deref(),
            env_var: Some("ANTHROPIC_ADMIN_KEY"),
            inline: raw.admin_key,
        },
        env,
    );
    let page_size = raw.page_size.unwrap_or(1000);
    if !(1..=1000).contains(&page_size) {
        check.problem(
            "api.page_size",
            format!("{page_size} must be between 1 and 1000"),
        );
    }
    let max_in_flight = raw.max_in_flight.unwrap_or(4);
    if max_in_flight == 0 || max_in_flight > 64 {
        check.problem(
            "api.max_in_flight",
            format!("{max_in_flight} must be between 1 and 64"),
        );
    }
    // No fixed pacing by default: the client adapts to the server's 429s and 529s instead.
    let requests_per_second = match raw.requests_per_second {
        None | Some(0.0) => None,
        Some(v) if v > 0.0 && v.is_finite() => Some(v),
        Some(v) => {
            check.problem(
                "api.requests_per_second",
                format!("{v} must be positive (0 for no limit)"),
            );
            None
        }
    };
    ApiConfig {
        base_url,
        admin_key,
        anthropic_version: raw
            .anthropic_version
            .unwrap_or_else(|| "2023-06-01".to_owned()),
        connect_timeout: check.duration(
            "api.connect_timeout",
            raw.connect_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        request_timeout: check.duration(
            "api.request_timeout",
            raw.request_timeout.as_deref(),
            Duration::from_secs(30),
        ),
        total_deadline: check.duration(
            "api.total_deadline",
            raw.total_deadline.as_deref(),
            Duration::from_secs(120),
        ),
        max_retries: raw.max_retries.unwrap_or(4),
        requests_per_second,
        max_in_flight,
        page_size,
    }
}

fn store(raw: RawStore, check: &mut Check<'_>) -> StoreConfig {
    let store = StoreConfig {
        path: raw
            .path
            .unwrap_or_else(|| PathBuf::from("/var/lib/orgwarden/orgwarden.db")),
        keep_days: raw.keep_days.unwrap_or(400),
    };
    if store.keep_days == 0 {
        check.problem("store.keep_days", "must be at least 1");
    }
    store
}

fn log(raw: RawLog, check: &mut Check<'_>) -> LogConfig {
    let level = raw.level.unwrap_or_else(|| "info".to_owned());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        check.problem(
            "log.level",
            format!("{level:?} is not a level or filter (error, warn, info, debug, trace)"),
        );
    }
    let format = match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            check.problem("log.format", format!("{other:?} is not one of text, json"));
            LogFormat::Text
        }
    };
    LogConfig { level, format }
}

fn rules(raw: RawRules, check: &mut Check<'_>) -> RulesConfig {
    let r = raw.stale_invites;
    let Shared {
        enabled,
        severity,
        remediate,
    } = check.rule("rules.stale_invites", r.shared(), Severity::Low);
    let stale_invites = StaleInvitesRule {
        enabled,
        severity,
        remediate,
        max_pending_days: r.max_pending_days.unwrap_or(7),
    };

    let r = raw.departed_domains;
    let Shared {
        enabled,
        severity,
        remediate,
    } = check.rule("rules.departed_domains", r.shared(), Severity::High);
    let departed_domains = DepartedDomainsRule {
        enabled,
        severity,
        remediate,
        departed_domains: check.domains(
            "rules.departed_domains.departed_domains",
            r.departed_domains.items(),
        ),
        allowed_domains: check.domains(
            "rules.departed_domains.allowed_domains",
            r.allowed_domains.items(),
        ),
        remove_members: r.remove_members.unwrap_or(false),
    };

    let r = raw.offboarding_roster;
    let Shared {
        enabled,
        severity,
        remediate,
    } = check.rule("rules.offboarding_roster", r.shared(), Severity::High);
    let offboarding_roster = RosterRule {
        enabled,
        severity,
        remediate,
        roster_csv: r.roster_csv,
        email_column: r.email_column.unwrap_or_else(|| "email".to_owned()),
        last_day_column: r.last_day_column.unwrap_or_else(|| "last_day".to_owned()),
        remove_members: r.remove_members.unwrap_or(false),
    };

    let r = raw.orphaned_keys;
    let Shared {
        enabled,
        severity,
        remediate,
    } = check.rule("rules.orphaned_keys", r.shared(), Severity::High);
    let orphaned_keys = OrphanedKeysRule {
        enabled,
        severity,
        remediate,
    };

    let r = raw.excess_admins;
    let Shared {
        enabled, severity, ..
    } = check.rule("rules.excess_admins", r.shared(), Severity::Medium);
    let excess_admins = ExcessAdminsRule {
        enabled,
        severity,
        max_admins: r.max_admins.unwrap_or(3),
        max_workspace_admins: r.max_workspace_admins.unwrap_or(3),
    };

    let r = raw.privilege_escalation;
    let Shared {
        enabled, severity, ..
    } = check.rule("rules.privilege_escalation", r.shared(), Severity::High);
    let privilege_escalation = PrivilegeEscalationRule { enabled, severity };

    let r = raw.dormant_keys;
    let Shared {
        enabled,
        severity,
        remediate,
    } = check.rule("rules.dormant_keys", r.shared(), Severity::Medium);
    let dormant_keys = DormantKeysRule {
        enabled,
        severity,
        remediate,
        max_idle_days: check.at_least_one("rules.dormant_keys.max_idle_days", r.max_idle_days, 90),
    };

    let r = raw.dormant_members;
    let Shared {
        enabled, severity, ..
    } = check.rule("rules.dormant_members", r.shared(), Severity::Low);
    let dormant_members = DormantMembersRule {
        enabled,
        severity,
        max_idle_days: check.at_least_one(
            "rules.dormant_members.max_idle_days",
            r.max_idle_days,
            60,
        ),
    };

    let r = raw.key_hygiene;
    let Shared {
        enabled, severity, ..
    } = check.rule("rules.key_hygiene", r.shared(), Severity::Low);
    let key_hygiene = KeyHygieneRule {
        enabled,
        severity,
        max_key_age_days: check.at_least_one(
            "rules.key_hygiene.max_key_age_days",
            r.max_key_age_days,
            365,
        ),
        flag_org_scoped: r.flag_org_scoped.unwrap_or(false),
    };

    let r = raw.directory_departed;
    let Shared {
        enabled,
        severity,
        remediate,
    } = check.rule("rules.directory_departed", r.shared(), Severity::High);
    let directory_departed = super::DirectoryDepartedRule {
        enabled,
        severity,
        remediate,
        remove_members: r.remove_members.unwrap_or(false),
    };
    let r = raw.directory_unknown;
    let Shared {
        enabled, severity, ..
    } = check.rule("rules.directory_unknown", r.shared(), Severity::Medium);
    let directory_unknown = super::DirectoryUnknownRule { enabled, severity };
    let r = raw.assignment_drift;
    let Shared {
        enabled, severity, ..
    } = check.rule("rules.assignment_drift", r.shared(), Severity::Medium);
    let assignment_drift = super::AssignmentDriftRule { enabled, severity };

    RulesConfig {
        stale_invites,
        departed_domains,
        offboarding_roster,
        orphaned_keys,
        excess_admins,
        privilege_escalation,
        dormant_keys,
        dormant_members,
        key_hygiene,
        directory_departed,
        directory_unknown,
        assignment_drift,
    }
}

fn exemptions(raw: Vec<RawExemption>, check: &mut Check<'_>) -> Vec<Exemption> {
    let mut exemptions = Vec::new();
    for (idx, raw_exemption) in raw.into_iter().enumerate() {
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
    exemptions
}

fn remediation(raw: RawRemediation, check: &mut Check<'_>) -> RemediationConfig {
    let mode = match raw.mode.as_deref() {
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
    RemediationConfig {
        mode,
        max_snapshot_age: check.duration(
            "remediation.max_snapshot_age",
            raw.max_snapshot_age.as_deref(),
            Duration::from_secs(7200),
        ),
        min_consecutive_snapshots: check.at_least_one(
            "remediation.min_consecutive_snapshots",
            raw.min_consecutive_snapshots,
            2,
        ),
        max_actions_per_run: check.at_least_one(
            "remediation.max_actions_per_run",
            raw.max_actions_per_run,
            25,
        ),
        max_fraction: check.bounded_fraction(
            "remediation.max_fraction",
            raw.max_fraction,
            0.10,
            true,
        ),
        max_population_drop: check.bounded_fraction(
            "remediation.max_population_drop",
            raw.max_population_drop,
            0.20,
            false,
        ),
        baseline_window: check.duration(
            "remediation.baseline_window",
            raw.baseline_window.as_deref(),
            Duration::from_secs(7 * 86_400),
        ),
        // "0s" is allowed here: the snapshot count (at least 1) still holds.
        min_finding_age: match raw.min_finding_age.as_deref() {
            Some(text) if parse_duration(text).is_some_and(|d| d.is_zero()) => Duration::ZERO,
            other => check.duration(
                "remediation.min_finding_age",
                other,
                Duration::from_secs(86_400),
            ),
        },
    }
}

fn mail(raw: RawMail, env: &Environment, check: &mut Check<'_>) -> Option<MailConfig> {
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
            let password = check.secret(
                SecretSources {
                    key: "mail.password",
                    credential: SMTP_PASSWORD_CREDENTIAL,
                    file: raw.password_file.as_deref(),
                    env_var: Some("ORGWARDEN_SMTP_PASSWORD"),
                    inline: raw.password,
                },
                env,
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
    let max_message_bytes = match raw.max_message_bytes {
        None => DEFAULT_MAX_MESSAGE_BYTES,
        Some(v) if MAX_MESSAGE_BYTES_RANGE.contains(&v) => v,
        Some(v) => {
            check.problem(
                "mail.max_message_bytes",
                format!(
                    "{v} must be between {} and {} (bytes)",
                    MAX_MESSAGE_BYTES_RANGE.start(),
                    MAX_MESSAGE_BYTES_RANGE.end()
                ),
            );
            DEFAULT_MAX_MESSAGE_BYTES
        }
    };
    let zip_over_bytes = match raw.zip_over_bytes {
        None => DEFAULT_ZIP_OVER_BYTES.min(max_message_bytes),
        Some(v) if v <= max_message_bytes => v,
        Some(v) => {
            check.problem(
                "mail.zip_over_bytes",
                format!("{v} must be between 0 and mail.max_message_bytes ({max_message_bytes})"),
            );
            DEFAULT_ZIP_OVER_BYTES.min(max_message_bytes)
        }
    };
    Some(MailConfig {
        from: from?,
        to,
        transport,
        max_message_bytes,
        zip_over_bytes,
    })
}

fn report(raw: RawReport) -> ReportConfig {
    ReportConfig {
        out_dir: raw
            .out_dir
            .unwrap_or_else(|| PathBuf::from("/var/lib/orgwarden/reports")),
        top_findings: raw.top_findings.unwrap_or(20),
        csv_bom: raw.csv_bom.unwrap_or(true),
    }
}

fn metrics(raw: RawMetrics, check: &mut Check<'_>) -> MetricsConfig {
    let listen = raw
        .listen
        .and_then(|text| match text.parse::<std::net::SocketAddr>() {
            Err(_) => {
                check.problem(
                    "metrics.listen",
                    format!("{text:?} is not an address and port (e.g. 127.0.0.1:9464)"),
                );
                None
            }
            Ok(addr) if !addr.ip().is_loopback() && raw.allow_remote != Some(true) => {
                check.problem(
                    "metrics.listen",
                    format!(
                        "{addr} is not a loopback address; the metrics show the organization's \
                     findings, so set metrics.allow_remote = true to serve them beyond this host"
                    ),
                );
                None
            }
            Ok(addr) => Some(addr),
        });
    MetricsConfig {
        listen,
        textfile: raw.textfile,
    }
}

fn events(raw: RawEvents, check: &mut Check<'_>) -> EventsConfig {
    let max_bytes = raw.max_bytes.unwrap_or(DEFAULT_EVENTS_MAX_BYTES);
    if max_bytes < 1000 {
        check.problem(
            "events.max_bytes",
            format!("{max_bytes} is too small; give at least 1000 bytes"),
        );
    }
    let path = match raw.path {
        None => None,
        Some(path) if path.as_os_str() == "-" => Some(EventsPath::Stdout),
        Some(path) if path.as_os_str().is_empty() || path.is_dir() => {
            check.problem(
                "events.path",
                format!(
                    "{:?} is not a file path (or \"-\" for standard output)",
                    path.display().to_string()
                ),
            );
            None
        }
        Some(path) => Some(EventsPath::File(path)),
    };
    EventsConfig { path, max_bytes }
}

fn usage(raw: RawUsage, check: &mut Check<'_>) -> UsageConfig {
    let backfill_days = match raw.backfill_days {
        None => UsageConfig::DEFAULT_BACKFILL_DAYS,
        Some(days) if (1..=i64::from(UsageConfig::MAX_BACKFILL_DAYS)).contains(&days) => {
            days as u32
        }
        Some(days) => {
            check.problem(
                "usage.backfill_days",
                format!(
                    "{days} is out of range: give 1 to {} days",
                    UsageConfig::MAX_BACKFILL_DAYS
                ),
            );
            UsageConfig::DEFAULT_BACKFILL_DAYS
        }
    };
    UsageConfig {
        enabled: raw.enabled.unwrap_or(true),
        backfill_days,
    }
}

fn schedule(raw: RawSchedule, check: &mut Check<'_>) -> ScheduleConfig {
    let timezone = match raw.timezone.as_deref() {
        None => chrono_tz::UTC,
        Some(name) => name.parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
            check.problem(
                "schedule.timezone",
                format!("{name:?} is not an IANA time zone (e.g. UTC, Europe/Paris)"),
            );
            chrono_tz::UTC
        }),
    };
    ScheduleConfig {
        timezone,
        audit: check.cron("schedule.audit", raw.audit, "0 0 * * * *"),
        report: check.cron("schedule.report", raw.report, "0 0 8 * * Mon"),
        outbox: check.cron("schedule.outbox", raw.outbox, "0 */5 * * * *"),
        run_on_start: raw.run_on_start.unwrap_or(true),
        shutdown_timeout: check.duration(
            "schedule.shutdown_timeout",
            raw.shutdown_timeout.as_deref(),
            Duration::from_secs(60),
        ),
    }
}

/// The settings every rule shares, validated.
struct Shared {
    enabled: bool,
    severity: Severity,
    remediate: bool,
}

/// The shared list of problems, and the checks more than one section uses.
pub(super) struct Check<'a> {
    problems: &'a mut Vec<Problem>,
}

impl Check<'_> {
    pub(super) fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// The secret from its first source, or `None` with the problem recorded.
    pub(super) fn secret(
        &mut self,
        sources: SecretSources<'_>,
        env: &Environment,
    ) -> Option<SecretString> {
        sources.read(env).unwrap_or_else(|problem| {
            self.problems.push(problem);
            None
        })
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

    /// The keys every rule shares: `enabled` (default true), `severity` (default the rule's
    /// own) and the `remediate` opt-in (default false).
    fn rule(&mut self, section: &str, raw: RawShared<'_>, default_severity: Severity) -> Shared {
        let severity = match raw.severity {
            None => default_severity,
            Some(text) => Severity::parse(text).unwrap_or_else(|| {
                self.problem(
                    &format!("{section}.severity"),
                    format!("{text:?} is not one of low, medium, high, critical"),
                );
                default_severity
            }),
        };
        Shared {
            enabled: raw.enabled.unwrap_or(true),
            severity,
            remediate: raw.remediate.unwrap_or(false),
        }
    }

    /// A count that must be at least 1 (a zero would switch a safety promise off).
    fn at_least_one(&mut self, key: &str, value: Option<u32>, default: u32) -> u32 {
        match value {
            None => default,
            Some(0) => {
                self.problem(key, "0 is not allowed: it must be at least 1");
                default
            }
            Some(v) => v,
        }
    }

    /// A fraction strictly above 0 and below 1, or up to 1 included when `one_allowed`.
    fn bounded_fraction(
        &mut self,
        key: &str,
        value: Option<f64>,
        default: f64,
        one_allowed: bool,
    ) -> f64 {
        match value {
            None => default,
            Some(v) if v > 0.0 && (v < 1.0 || (one_allowed && v == 1.0)) => v,
            Some(v) => {
                let range = if one_allowed { "(0, 1]" } else { "(0, 1)" };
                self.problem(
                    key,
                    format!(
                        "{v} must be in {range}: above 0 and below {}1",
                        if one_allowed { "or equal to " } else { "" }
                    ),
                );
                default
            }
        }
    }

    pub(super) fn domains(&mut self, key: &str, items: Vec<String>) -> Vec<String> {
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

    pub(super) fn cron(&mut self, key: &str, value: Option<String>, default: &str) -> String {
        let expr = value.unwrap_or_else(|| default.to_owned());
        match parse_cron(&expr) {
            Err(error) => {
                self.problem(key, format!("{expr:?} is not a cron expression with seconds (sec min hour dom mon dow): {error}"));
            }
            Ok(cron) => {
                // A valid expression can still never fire (`0 0 0 30 2 *`, February 30th): the
                // job would silently never run.
                // Validation has no job context; "fires within a year" needs only the wall clock.
                #[allow(clippy::disallowed_methods)]
                let now = chrono::Utc::now();
                let fires = cron
                    .find_next_occurrence(&now, false)
                    .is_ok_and(|next| next - now <= chrono::Duration::days(366));
                if !fires {
                    self.problem(
                        key,
                        format!(
                            "{expr:?} has no occurrence in the next year; the job would never run"
                        ),
                    );
                }
            }
        }
        expr
    }
}

pub(super) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
