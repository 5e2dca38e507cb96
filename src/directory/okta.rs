//! Placeholder until the okta source lands: every read fails, so its rules stay not_evaluated.
use crate::{config::OktaSettings, directory::DirectoryError, org::DirectoryListing};
pub async fn read(
    name: &str,
    _settings: &OktaSettings,
) -> Result<DirectoryListing, DirectoryError> {
    Err(DirectoryError {
        source: name.to_owned(),
        message: "not built yet".to_owned(),
    })
}
