//! How serious a finding is. Each rule's is configured (`rules.NAME.severity`); findings, the
//! store, the report and the output carry it, ordered from `low` to `critical`.
//!
//! A leaf: it imports nothing from the crate, so `config` can build it without depending on the
//! rest of `policy`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Ordered from the least to the most serious, so sorting in reverse lists critical first. The
/// serde names (`low`, ..., `critical`) are stored and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
