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
    warnings
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
