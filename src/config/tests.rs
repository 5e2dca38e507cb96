//! The configuration end to end: TOML and environment in, `Config` or every problem out.

use secrecy::ExposeSecret;

use super::*;

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
fn a_duration_too_large_is_a_problem_not_a_panic() {
    let error = Config::from_toml(
        "[remediation]\nmax_snapshot_age = \"999999999999999999999d\"\n",
        &env(&[]),
    )
    .unwrap_err();
    assert_eq!(error.problems[0].key, "remediation.max_snapshot_age");
}

#[test]
fn a_section_that_is_not_a_table_is_a_problem() {
    // `rules` is only a parent of sections, and a derived struct would take a list's items as
    // its fields in order: both used to pass unnoticed.
    let error = Config::from_toml(
        "rules = \"strict\"\napi = [\"https://api.example.com\", \"sk-inline\"]\n",
        &env(&[]),
    )
    .unwrap_err();
    let problems: Vec<String> = error.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        problems,
        vec![
            "api: invalid type: sequence, expected a map",
            "rules: invalid type: string \"strict\", expected a map",
        ]
    );
    let error = Config::from_toml("", &env(&[("ORGWARDEN__RULES", "strict")])).unwrap_err();
    assert_eq!(error.problems[0].key, "rules");
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
fn relative_secret_files_are_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin_key"), "key-from-file\n").unwrap();
    std::fs::write(dir.path().join("smtp_password"), "password-from-file\n").unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[api]\nadmin_key_file = \"admin_key\"\n\
         [mail]\nfrom = \"o@example.com\"\nto = \"a@example.com\"\nhost = \"smtp.example.com\"\n\
         username = \"u\"\npassword_file = \"smtp_password\"\n",
    )
    .unwrap();
    // The test runs in the crate's directory, where neither file exists.
    let loaded = load(Some(&path), &env(&[])).unwrap();
    let key = loaded.config.api.admin_key.unwrap();
    assert_eq!(key.expose_secret(), "key-from-file");
    match loaded.config.mail.unwrap().transport {
        MailTransport::Smtp { password, .. } => {
            assert_eq!(password.unwrap().expose_secret(), "password-from-file")
        }
        MailTransport::File { .. } => panic!("smtp expected"),
    }
}

#[test]
fn example_config_is_valid_and_complete() {
    let example = include_str!("../../config.toml.example");
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
fn mail_size_limits_have_defaults_and_ranges() {
    let base =
        "[mail]\nfrom = \"o@example.com\"\nto = \"a@example.com\"\nhost = \"smtp.example.com\"\n";
    let mail = Config::from_toml(base, &env(&[])).unwrap().0.mail.unwrap();
    assert_eq!(
        (mail.max_message_bytes, mail.zip_over_bytes),
        (10_000_000, 2_000_000)
    );
    // A limit below the zip default lowers the zip default with it.
    let mail = Config::from_toml(&format!("{base}max_message_bytes = 1_000_000\n"), &env(&[]))
        .unwrap()
        .0
        .mail
        .unwrap();
    assert_eq!(
        (mail.max_message_bytes, mail.zip_over_bytes),
        (1_000_000, 1_000_000)
    );
    // From the environment too.
    let mail = Config::from_toml(
        base,
        &env(&[
            ("ORGWARDEN__MAIL__MAX_MESSAGE_BYTES", "20000000"),
            ("ORGWARDEN__MAIL__ZIP_OVER_BYTES", "0"),
        ]),
    )
    .unwrap()
    .0
    .mail
    .unwrap();
    assert_eq!(
        (mail.max_message_bytes, mail.zip_over_bytes),
        (20_000_000, 0)
    );

    for (lines, key, words) in [
        (
            "max_message_bytes = 9999\n",
            "mail.max_message_bytes",
            "between 10000 and 1000000000",
        ),
        (
            "max_message_bytes = 2_000_000_000\n",
            "mail.max_message_bytes",
            "between 10000 and 1000000000",
        ),
        (
            "max_message_bytes = 100_000\nzip_over_bytes = 100_001\n",
            "mail.zip_over_bytes",
            "mail.max_message_bytes (100000)",
        ),
    ] {
        let error = Config::from_toml(&format!("{base}{lines}"), &env(&[])).unwrap_err();
        assert_eq!(error.problems.len(), 1, "{lines}: {:?}", error.problems);
        assert_eq!(error.problems[0].key, key, "{lines}");
        assert!(
            error.problems[0].message.contains(words),
            "{lines}: {}",
            error.problems[0].message
        );
    }
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
fn every_rule_has_the_shared_keys_and_only_remediable_rules_opt_in() {
    // (enabled, severity, remediate) of one rule; `None` where the rule cannot remediate.
    let shared = |r: &RulesConfig, rule: &str| -> (bool, Severity, Option<bool>) {
        match rule {
            "stale_invites" => {
                let r = &r.stale_invites;
                (r.enabled, r.severity, Some(r.remediate))
            }
            "departed_domains" => {
                let r = &r.departed_domains;
                (r.enabled, r.severity, Some(r.remediate))
            }
            "offboarding_roster" => {
                let r = &r.offboarding_roster;
                (r.enabled, r.severity, Some(r.remediate))
            }
            "orphaned_keys" => {
                let r = &r.orphaned_keys;
                (r.enabled, r.severity, Some(r.remediate))
            }
            "dormant_keys" => {
                let r = &r.dormant_keys;
                (r.enabled, r.severity, Some(r.remediate))
            }
            "dormant_members" => (r.dormant_members.enabled, r.dormant_members.severity, None),
            "key_hygiene" => (r.key_hygiene.enabled, r.key_hygiene.severity, None),
            "excess_admins" => (r.excess_admins.enabled, r.excess_admins.severity, None),
            "privilege_escalation" => (
                r.privilege_escalation.enabled,
                r.privilege_escalation.severity,
                None,
            ),
            other => panic!("no rule {other}"),
        }
    };
    let defaults = Config::from_toml("", &env(&[])).unwrap().0.rules;
    for (rule, default_severity, remediable) in [
        ("stale_invites", Severity::Low, true),
        ("departed_domains", Severity::High, true),
        ("offboarding_roster", Severity::High, true),
        ("orphaned_keys", Severity::High, true),
        ("excess_admins", Severity::Medium, false),
        ("privilege_escalation", Severity::High, false),
        ("dormant_keys", Severity::Medium, true),
        ("dormant_members", Severity::Low, false),
        ("key_hygiene", Severity::Low, false),
    ] {
        assert_eq!(
            shared(&defaults, rule),
            (true, default_severity, remediable.then_some(false)),
            "{rule}"
        );

        let text = format!("[rules.{rule}]\nseverity = \"urgent\"\nremediate = true\n");
        let error = Config::from_toml(&text, &env(&[])).unwrap_err();
        let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
        let severity_key = format!("rules.{rule}.severity");
        let remediate_key = format!("rules.{rule}.remediate");
        let want: Vec<&str> = if remediable {
            vec![&severity_key]
        } else {
            vec![&remediate_key, &severity_key]
        };
        assert_eq!(keys, want, "{rule}");

        let key = |name: &str| format!("ORGWARDEN__RULES__{}__{name}", rule.to_uppercase());
        let mut vars = vec![(key("ENABLED"), "false"), (key("SEVERITY"), "critical")];
        if remediable {
            vars.push((key("REMEDIATE"), "true"));
        }
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (config, _) = Config::from_toml("", &env(&vars)).unwrap();
        assert_eq!(
            shared(&config.rules, rule),
            (false, Severity::Critical, remediable.then_some(true)),
            "{rule}"
        );
    }
}

/// `config` builds these domain types, and `policy` and `remediate` read `config`: the files
/// holding them must stay leaves, or the two layers would depend on each other.
#[test]
fn the_domain_types_config_builds_import_nothing_from_the_crate() {
    for (path, text) in [
        ("policy/severity.rs", include_str!("../policy/severity.rs")),
        (
            "policy/exemption.rs",
            include_str!("../policy/exemption.rs"),
        ),
        ("remediate/mode.rs", include_str!("../remediate/mode.rs")),
    ] {
        let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
        for line in code {
            assert!(
                !line.contains("crate::") && !line.contains("super::"),
                "{path} uses the crate: {line}"
            );
        }
    }
}

#[test]
fn alert_channels_list_every_problem_and_never_quote_the_url() {
    let error = Config::from_toml(
        "[alerts]\nmin_severity = \"urgent\"\nfailed_runs = 0\nmax_per_message = 0\n\
         [[alerts.channels]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"http://hooks.example.com/T000/SECRETTOKEN\"\nsecret = \"x\"\n\
         [[alerts.channels]]\nname = \"chat\"\ntype = \"pager\"\nurl = \"https://ok.example.com/\"\ncolour = \"red\"\n\
         [[alerts.channels]]\nname = \"mail\"\ntype = \"email\"\n\
         [[alerts.channels]]\nname = \"hook\"\ntype = \"webhook\"\n",
        &env(&[]),
    )
    .unwrap_err();
    let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "alerts.min_severity",
        "alerts.failed_runs",
        "alerts.max_per_message",
        "alerts.channels[0].url",
        "alerts.channels[0].secret",
        "alerts.channels[1].name",
        "alerts.channels[1].type",
        "alerts.channels[1].colour",
        "alerts.channels[2].to",
        "alerts.channels[2].type",
        "alerts.channels[3].url",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(!error.to_string().contains("SECRETTOKEN"), "{error}");

    let (config, _) = Config::from_toml(
        "[alerts]\n[[alerts.channels]]\nname = \"siem\"\ntype = \"webhook\"\nurl_env = \"SIEM_URL\"\nsecret = \"k\"\n",
        &env(&[("SIEM_URL", "https://siem.example.com/in")]),
    )
    .unwrap();
    assert_eq!(config.alerts.min_severity, Severity::High);
    assert_eq!(config.alerts.failed_runs, 2);
    let channel = &config.alerts.channels[0];
    assert_eq!(channel.kind, crate::config::ChannelKind::Webhook);
    assert_eq!(
        channel.url.as_ref().unwrap().expose_secret(),
        "https://siem.example.com/in"
    );
    assert!(!format!("{config:?}").contains("siem.example.com"));
}

#[test]
fn owner_notice_is_off_by_default_and_validation_names_its_keys() {
    let (config, _) = Config::from_toml("", &env(&[])).unwrap();
    assert!(!config.alerts.owner_notice.enabled);
    let error = Config::from_toml(
        "[alerts.owner_notice]\nenabled = true\ncontact = \" \"\ncolour = \"red\"\n",
        &env(&[]),
    )
    .unwrap_err();
    let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "alerts.owner_notice.enabled",
        "alerts.owner_notice.contact",
        "alerts.owner_notice.colour",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
}

#[test]
fn usage_is_on_with_90_days_by_default_and_every_bad_value_is_named() {
    let (config, _) = Config::from_toml("", &env(&[])).unwrap();
    assert_eq!(config.usage, UsageConfig::default());
    assert!(config.usage.enabled);
    assert_eq!(config.usage.backfill_days, 90);

    let (config, _) =
        Config::from_toml("[usage]\nenabled = false\nbackfill_days = 30\n", &env(&[])).unwrap();
    assert_eq!(
        config.usage,
        UsageConfig {
            enabled: false,
            backfill_days: 30
        }
    );

    // A wrong type names the section (as for every section), an unknown key names itself.
    let text = "[usage]\nenabled = \"perhaps\"\nbackfil_days = 3\n";
    let error = Config::from_toml(text, &env(&[])).unwrap_err();
    let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["usage.backfil_days", "usage"]);
    assert!(error.problems[1].message.contains("enabled"), "{error}");
    let error = Config::from_toml("[usage]\nbackfill_days = 0\n", &env(&[])).unwrap_err();
    assert_eq!(error.problems[0].key, "usage.backfill_days");
    let error = Config::from_toml("[usage]\nbackfill_days = 401\n", &env(&[])).unwrap_err();
    assert_eq!(error.problems[0].key, "usage.backfill_days");
    assert!(error.problems[0].message.contains("1 to 400"));
}

#[test]
fn unused_access_rules_have_their_defaults_and_refuse_zero_windows() {
    let rules = Config::from_toml("", &env(&[])).unwrap().0.rules;
    assert_eq!(rules.dormant_keys.max_idle_days, 90);
    assert_eq!(rules.dormant_members.max_idle_days, 60);
    assert_eq!(rules.key_hygiene.max_key_age_days, 365);
    assert!(!rules.key_hygiene.flag_org_scoped);

    let text = "[rules.dormant_keys]\nmax_idle_days = 30\n\
                [rules.dormant_members]\nmax_idle_days = 14\n\
                [rules.key_hygiene]\nmax_key_age_days = 180\nflag_org_scoped = true\n";
    let rules = Config::from_toml(text, &env(&[])).unwrap().0.rules;
    assert_eq!(rules.dormant_keys.max_idle_days, 30);
    assert_eq!(rules.dormant_members.max_idle_days, 14);
    assert_eq!(rules.key_hygiene.max_key_age_days, 180);
    assert!(rules.key_hygiene.flag_org_scoped);

    let text = "[rules.dormant_keys]\nmax_idle_days = 0\n\
                [rules.dormant_members]\nmax_idle_days = 0\n\
                [rules.key_hygiene]\nmax_key_age_days = 0\n";
    let error = Config::from_toml(text, &env(&[])).unwrap_err();
    let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "rules.dormant_keys.max_idle_days",
            "rules.dormant_members.max_idle_days",
            "rules.key_hygiene.max_key_age_days",
        ]
    );
}
