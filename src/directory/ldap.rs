//! Placeholder until the ldap source lands: every read fails, so its rules stay not_evaluated.
use crate::{config::LdapSettings, directory::DirectoryError, org::DirectoryListing};
pub async fn read(
    name: &str,
    _settings: &LdapSettings,
) -> Result<DirectoryListing, DirectoryError> {
    Err(DirectoryError {
        source: name.to_owned(),
        message: "not built yet".to_owned(),
    })
}
