//! The remediation mode (`remediation.mode`): whether recommended actions are only planned or
//! also carried out.
//!
//! A leaf: it imports nothing from the crate, so `config` can build it without depending on the
//! rest of `remediate`.

use serde::{Deserialize, Serialize};

/// Only `enforce` makes calls; under `off` and `dry-run` (the default) the plan is made and every
/// guard judged, but nothing is called. The serde names are the configuration's and the output's
/// spelling.
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
