//! Placeholder until the google source lands: every read fails, so its rules stay not_evaluated.
use crate::{config::GoogleSettings, directory::DirectoryError, org::DirectoryListing};
pub async fn read(
    name: &str,
    _settings: &GoogleSettings,
) -> Result<DirectoryListing, DirectoryError> {
    Err(DirectoryError {
        source: name.to_owned(),
        message: "not built yet".to_owned(),
    })
}
