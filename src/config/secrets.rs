//! Secrets: the admin key and the SMTP password, read from the first source that has them and
//! held as `SecretString` from then on.
//!
//! Sources, in order: the systemd credentials directory (`$CREDENTIALS_DIRECTORY`, filled by
//! `LoadCredential=`), a `*_file` path (relative to the configuration file, like every path), an
//! environment variable, then the value written in the configuration itself (with a warning when
//! the file is readable by others). A problem names the key and the path, never the content.

use std::path::Path;

use secrecy::SecretString;

use super::{Environment, Problem};

/// The systemd credential names (`LoadCredential=NAME:...`).
pub const ADMIN_KEY_CREDENTIAL: &str = "anthropic_admin_key";
pub const SMTP_PASSWORD_CREDENTIAL: &str = "smtp_password";

/// The environment variables that hold a secret itself.
const ADMIN_KEY_ENV: &str = "ANTHROPIC_ADMIN_KEY";
const SMTP_PASSWORD_ENV: &str = "ORGWARDEN_SMTP_PASSWORD";

/// One secret and the places it may be given, tried in the order of the fields.
pub(super) struct SecretSources<'a> {
    /// The key a problem is reported under (`api.admin_key`); a `*_file` problem goes under
    /// `{key}_file`.
    pub(super) key: &'a str,
    /// The file name in `$CREDENTIALS_DIRECTORY`.
    pub(super) credential: &'a str,
    /// The `*_file` setting.
    pub(super) file: Option<&'a Path>,
    /// An environment variable holding the secret itself.
    pub(super) env_var: Option<&'a str>,
    /// The value written in the configuration (the file or an `ORGWARDEN__` variable).
    pub(super) inline: Option<String>,
}

impl SecretSources<'_> {
    /// The secret from the first source that has it, `None` when no source does, or the problem
    /// with the first source that exists but cannot be used (an unreadable or empty file).
    pub(super) fn read(self, env: &Environment) -> Result<Option<SecretString>, Problem> {
        if let Some(dir) = env.get("CREDENTIALS_DIRECTORY") {
            let path = Path::new(dir).join(self.credential);
            if path.exists() {
                return secret_from_file(self.key, &path).map(Some);
            }
        }
        if let Some(path) = self.file {
            return secret_from_file(&format!("{}_file", self.key), path).map(Some);
        }
        if let Some(value) = self.env_var.and_then(|name| env.get(name)) {
            if !value.trim().is_empty() {
                return Ok(Some(SecretString::from(value.trim().to_owned())));
            }
        }
        Ok(self
            .inline
            .filter(|value| !value.trim().is_empty())
            .map(|value| SecretString::from(value.trim().to_owned())))
    }
}

fn secret_from_file(key: &str, path: &Path) -> Result<SecretString, Problem> {
    let problem = |message: String| Problem {
        key: key.to_owned(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(SecretString::from(text.trim().to_owned())),
        Ok(_) => Err(problem(format!("{} is empty", path.display()))),
        // The error names the path, never the content.
        Err(error) => Err(problem(format!("cannot read {}: {error}", path.display()))),
    }
}

/// The warnings for secrets written in a configuration file that other users can read.
pub(super) fn inline_secret_warnings(file_text: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    if file_sets(file_text, "api", "admin_key") {
        warnings.push("api.admin_key: a secret is written in a config file that other users can read; use a credential (LoadCredential=anthropic_admin_key), api.admin_key_file or ANTHROPIC_ADMIN_KEY".to_owned());
    }
    if file_sets(file_text, "mail", "password") {
        warnings.push("mail.password: a secret is written in a config file that other users can read; use a credential (LoadCredential=smtp_password) or mail.password_file".to_owned());
    }
    for (idx, key) in directory_inline_secrets(file_text) {
        warnings.push(format!("directories[{idx}].{key}: a secret is written in a config file that other users can read; use a credential (LoadCredential=directory_<name>_{key}) or {key}_file"));
    }
    warnings
}

/// The `[[directories]]` entries that write a secret inline: (index, key).
fn directory_inline_secrets(text: &str) -> Vec<(usize, &'static str)> {
    let Ok(value) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let Some(entries) = value.get("directories").and_then(|d| d.as_array()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (idx, entry) in entries.iter().enumerate() {
        for key in ["api_token", "client_secret", "bind_password"] {
            if entry
                .get(key)
                .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            {
                out.push((idx, key));
            }
        }
    }
    out
}

/// Whether the file itself (not the environment) gives `[section] key` a non-empty string.
fn file_sets(text: &str, section: &str, key: &str) -> bool {
    let Ok(value) = text.parse::<toml::Table>() else {
        return false;
    };
    value
        .get(section)
        .and_then(|s| s.get(key))
        .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
}

/// Whether a key's value is a secret: `admin_key`, any `*key`, `*password*`, `*secret*` or
/// `*token*` (except the `*_file` keys, which hold paths).
pub(super) fn is_secret_key(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    let name_last = name
        .rsplit('.')
        .next()
        .unwrap_or("")
        .trim_matches(['"', '\'']);
    if name_last.ends_with("_file") {
        return false;
    }
    // A chat webhook's URL carries its token (`[[alerts.channels]] url`).
    name_last.ends_with("key")
        || name_last == "url"
        || ["password", "passwd", "secret", "token"]
            .iter()
            .any(|word| name_last.contains(word))
}

/// Removes the secrets of a configuration from a problem's message: a file excerpt's line
/// (`12 | admin_key = "sk-..."`) that assigns a secret key is replaced as a whole, and any
/// secret value found in the file or the environment is replaced wherever it appears.
#[derive(Debug, Default)]
pub(super) struct Redactor {
    /// 1-based numbers of the file's lines that hold (part of) a secret value.
    lines: std::collections::BTreeSet<usize>,
    /// Secret values as written, longest first.
    values: Vec<String>,
}

pub(super) const REDACTED: &str = "<redacted>";

impl Redactor {
    pub(super) fn new(text: Option<&str>, env: &Environment) -> Redactor {
        let mut redactor = Redactor::default();
        if let Some(text) = text {
            redactor.scan(text);
        }
        for (name, value) in &env.vars {
            let secret = name.eq_ignore_ascii_case(ADMIN_KEY_ENV)
                || name.eq_ignore_ascii_case(SMTP_PASSWORD_ENV)
                || (name.starts_with("ORGWARDEN__")
                    && is_secret_key(name.rsplit("__").next().unwrap_or("")));
            if secret {
                redactor.add_value(value);
            }
        }
        redactor
            .values
            .sort_by_key(|value| std::cmp::Reverse(value.len()));
        redactor
    }

    fn add_value(&mut self, value: &str) {
        let value = value.trim();
        for candidate in [
            value,
            value.trim_end_matches([',', '}', ' ']).trim(),
            value
                .trim_end_matches([',', '}', ' '])
                .trim()
                .trim_matches(['"', '\'']),
        ] {
            // Very short values ("", "1") would blank out unrelated text and protect nothing.
            if candidate.chars().count() >= 4 && !self.values.iter().any(|v| v == candidate) {
                self.values.push(candidate.to_owned());
            }
        }
    }

    fn scan(&mut self, text: &str) {
        let mut open_multiline: Option<&str> = None;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if let Some(closer) = open_multiline {
                self.lines.insert(number);
                self.add_value(line);
                if line.contains(closer) {
                    open_multiline = None;
                }
                continue;
            }
            // Every `key = value` on the line (an inline table can hold several).
            let mut rest = line;
            let mut consumed = 0;
            while let Some(eq) = rest.find('=') {
                let before = &line[..consumed + eq];
                let key: String = before
                    .trim_end()
                    .chars()
                    .rev()
                    .take_while(|c| {
                        c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'')
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let value = &rest[eq + 1..];
                if is_secret_key(&key) {
                    self.lines.insert(number);
                    self.add_value(value);
                    let trimmed = value.trim_start();
                    for closer in ["\"\"\"", "'''"] {
                        if trimmed.starts_with(closer) && !trimmed[3..].contains(closer) {
                            open_multiline = Some(closer);
                        }
                    }
                }
                consumed += eq + 1;
                rest = &rest[eq + 1..];
            }
        }
    }

    /// The message with every secret removed.
    pub(super) fn redact(&self, message: &str) -> String {
        let mut out = String::with_capacity(message.len());
        for (index, line) in message.split('\n').enumerate() {
            if index > 0 {
                out.push('\n');
            }
            out.push_str(&self.redact_line(line));
        }
        out
    }

    fn redact_line(&self, line: &str) -> String {
        // An excerpt line of a TOML error: `12 | text`.
        if let Some((number, _)) = line.split_once('|') {
            if let Ok(number) = number.trim().parse::<usize>() {
                if self.lines.contains(&number) {
                    let indent = line.len() - line.trim_start().len();
                    return format!(
                        "{}{number} | {REDACTED} (this line sets a secret)",
                        &line[..indent]
                    );
                }
            }
        }
        let mut line = line.to_owned();
        for value in &self.values {
            if line.contains(value.as_str()) {
                line = line.replace(value.as_str(), REDACTED);
            }
        }
        line
    }
}
