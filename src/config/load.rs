//! Loading: finding the file, merging it with the `ORGWARDEN__SECTION__KEY` environment overlay,
//! listing unknown keys, and deserialising each section into its raw form for validation.
//!
//! The `config` crate merges the file and the environment (added last, so it wins). Unknown keys
//! are found by walking the merged tree against the raw schema's skeleton rather than by
//! `deny_unknown_fields` alone, so that every typo is listed, not only the first of a section.

use std::path::{Path, PathBuf};

use super::raw::{self, RawConfig, RawRules};
use super::{secrets, validate, Config, ConfigError, Problem, DEFAULT_CONFIG_PATH};

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

    pub(super) fn get(&self, name: &str) -> Option<&str> {
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
    // Relative paths in a file are relative to the file, so a service and a person running a
    // one-off command from another directory read the same database and secret files.
    let base_dir = text.as_ref().and(path.parent());
    let config = resolve(
        text.as_deref(),
        base_dir,
        env,
        file_readable_by_others,
        &description,
        &mut warnings,
    )?;
    Ok(Loaded {
        config,
        path: text.map(|_| path),
        warnings,
    })
}

impl Config {
    /// Validates a configuration given as TOML text, with an explicit environment. Used by tests
    /// and the demo.
    pub fn from_toml(text: &str, env: &Environment) -> Result<(Config, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let config = resolve(Some(text), None, env, false, "inline", &mut warnings)?;
        Ok((config, warnings))
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

/// Merges the file's text (relative paths in it taken from `base_dir`) with the environment, and
/// validates the result.
fn resolve(
    text: Option<&str>,
    base_dir: Option<&Path>,
    env: &Environment,
    file_readable_by_others: bool,
    description: &str,
    warnings: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    // A problem's message can quote the file (a TOML syntax error shows the line) or a value (a
    // type error): secrets are taken out of every message before it is shown or logged.
    let fail = |problems: Vec<Problem>| {
        let redactor = secrets::Redactor::new(text, env);
        ConfigError {
            source_description: description.to_owned(),
            problems: problems
                .into_iter()
                .map(|problem| Problem {
                    message: redactor.redact(&problem.message),
                    key: redactor.redact(&problem.key),
                })
                .collect(),
        }
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
        // The `config` crate drops the position of some TOML errors ("floating-point number
        // overflowed"); the toml parser's own message names the line and quotes it.
        let message = text
            .and_then(|text| text.parse::<toml::Table>().err())
            .map_or_else(|| error.to_string(), |toml_error| toml_error.to_string());
        fail(vec![Problem {
            key: "(file)".to_owned(),
            message,
        }])
    })?;

    let mut problems = Vec::new();
    unknown_keys(&merged, &mut problems);
    let mut raw = sections(&merged, &mut problems);
    if let Some(dir) = base_dir {
        raw.rebase_paths(dir);
    }
    let config = validate::validate(raw, env, &mut problems);
    if let (Some(text), true) = (text, file_readable_by_others) {
        warnings.extend(secrets::inline_secret_warnings(text));
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(fail(problems))
    }
}

/// Lists every key that is not part of the schema, by comparing with the raw schema's skeleton.
fn unknown_keys(merged: &config::Config, problems: &mut Vec<Problem>) {
    let Ok(given) = merged.clone().try_deserialize::<serde_json::Value>() else {
        return;
    };
    walk_unknown(
        &given,
        &raw::skeleton(),
        &raw::exemption_skeleton(),
        "",
        problems,
    );
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
            Some(_)
                if path == "exemptions" || path == "alerts.channels" || path == "directories" =>
            {
                let item_skeleton = match path.as_str() {
                    "exemptions" => exemption_skeleton.clone(),
                    "directories" => raw::directory_skeleton(),
                    _ => raw::channel_skeleton(),
                };
                if let Some(items) = value.as_array() {
                    for (idx, item) in items.iter().enumerate() {
                        let item_path = format!("{path}[{idx}]");
                        walk_unknown(
                            item,
                            &item_skeleton,
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
    let skeleton = raw::skeleton();
    let exemption_skeleton = raw::exemption_skeleton();
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
        // Serde's derived structs also accept a sequence, taking the fields by position
        // (`api = ["https://...", "sk-..."]`), which nobody means: only the exemptions are a list.
        let is_list = key == "exemptions" || key == "directories";
        if !is_list && matches!(value.kind, config::ValueKind::Array(_)) {
            problems.extend(table_problem(key, value));
            return None;
        }
        // Unknown keys were reported by `unknown_keys`; pruning them here lets the rest of the
        // section be checked instead of failing on the first unknown field.
        let directory_skeleton = raw::directory_skeleton();
        let template = if key == "exemptions" {
            &exemption_skeleton
        } else if key == "directories" {
            &directory_skeleton
        } else {
            key.split('.').fold(&skeleton, |node, part| &node[part])
        };
        let mut value = prune(value, template);
        // The channels of `[alerts]` are a list of tables and `owner_notice` a table: prune
        // each entry and that table too.
        if key == "alerts" {
            if let config::ValueKind::Table(table) = &mut value.kind {
                if let Some(channels) = table.remove("channels") {
                    table.insert(
                        "channels".to_owned(),
                        prune(channels, &raw::channel_skeleton()),
                    );
                }
                if let Some(notice) = table.remove("owner_notice") {
                    table.insert(
                        "owner_notice".to_owned(),
                        prune(notice, &skeleton["alerts"]["owner_notice"]),
                    );
                }
            }
        }
        Some(value)
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
        rules: {
            // `[rules]` has no keys of its own, so no section above reads it as a whole: a
            // `rules = "strict"` would otherwise go unnoticed.
            if let Ok(value) = merged.get::<config::Value>("rules") {
                problems.extend(table_problem("rules", value));
            }
            RawRules {
                stale_invites: take!("rules.stale_invites"),
                departed_domains: take!("rules.departed_domains"),
                offboarding_roster: take!("rules.offboarding_roster"),
                orphaned_keys: take!("rules.orphaned_keys"),
                excess_admins: take!("rules.excess_admins"),
                privilege_escalation: take!("rules.privilege_escalation"),
                dormant_keys: take!("rules.dormant_keys"),
                dormant_members: take!("rules.dormant_members"),
                key_hygiene: take!("rules.key_hygiene"),
                directory_departed: take!("rules.directory_departed"),
                directory_unknown: take!("rules.directory_unknown"),
                assignment_drift: take!("rules.assignment_drift"),
            }
        },
        exemptions: take!("exemptions"),
        remediation: take!("remediation"),
        mail: take!("mail"),
        report: take!("report"),
        schedule: take!("schedule"),
        metrics: take!("metrics"),
        events: take!("events"),
        alerts: take!("alerts"),
        usage: take!("usage"),
        directories: take!("directories"),
    }
}

/// The problem with a value that should be a table, if it is not one ("invalid type: sequence,
/// expected a map").
fn table_problem(key: &str, value: config::Value) -> Option<Problem> {
    value.into_table().err().map(|error| Problem {
        key: key.to_owned(),
        message: error.to_string(),
    })
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
