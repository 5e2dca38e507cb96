//! Parsers for the value syntaxes the configuration uses: cron expressions with seconds,
//! durations (`"30s"`, `"2h"`) and email domains. Each returns `None` or an error and leaves the
//! wording of the problem to validation.

use std::time::Duration;

/// Parses a `[schedule]` cron expression: six fields, seconds first (`sec min hour dom mon dow`).
/// The one parser behind validation, the daemon's schedule and `status`.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr)
}

/// Parses `"30s"`, `"5m"`, `"2h"`, `"1d"`, `"500ms"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => number,
        "ms" => number / 1000.0,
        "m" | "min" | "mins" => number * 60.0,
        "h" | "hour" | "hours" => number * 3600.0,
        "d" | "day" | "days" => number * 86400.0,
        _ => return None,
    };
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    // A value beyond `Duration::MAX` is a problem to report, not a panic.
    Duration::try_from_secs_f64(secs).ok()
}

/// Lowercases and IDNA-normalises a domain (`Bücher.Example` → `xn--bcher-kva.example`).
pub fn normalize_domain(text: &str) -> Option<String> {
    let trimmed = text.trim().trim_start_matches('@').trim_end_matches('.');
    if trimmed.is_empty() || trimmed.contains(['@', '/', ' ']) {
        return None;
    }
    idna::domain_to_ascii(trimmed)
        .ok()
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_domains() {
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("soon"), None);
        // Beyond `Duration::MAX`: refused, where it used to panic.
        assert_eq!(parse_duration("999999999999999999999d"), None);
        assert_eq!(
            normalize_domain("Bücher.Example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(
            normalize_domain("@Example.COM.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_domain("a b"), None);
    }
}
