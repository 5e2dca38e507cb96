//! Cron occurrences in a time zone, shared by the daemon (when to run) and `status` (when the
//! next run is due).

use chrono::{DateTime, Utc};
use croner::Cron;

/// The first occurrence of `cron` strictly after `after`, reading the expression as wall-clock
/// time in `timezone` (so `0 0 8 * * *` stays at 08:00 local across DST changes).
pub fn next_occurrence(
    cron: &Cron,
    timezone: chrono_tz::Tz,
    after: DateTime<Utc>,
) -> Result<DateTime<Utc>, croner::errors::CronError> {
    cron.find_next_occurrence(&after.with_timezone(&timezone), false)
        .map(|next| next.with_timezone(&Utc))
}

/// The gap between the next two occurrences of cron expression `expr` after `after`: the
/// job's period (`None` when the expression does not parse or never fires).
pub fn period(
    expr: &str,
    timezone: chrono_tz::Tz,
    after: DateTime<Utc>,
) -> Option<chrono::Duration> {
    let cron = crate::config::parse_cron(expr).ok()?;
    let first = next_occurrence(&cron, timezone, after).ok()?;
    let second = next_occurrence(&cron, timezone, first).ok()?;
    Some(second - first)
}

/// Why the data is stale, or `None` when it is fresh: the rule `status` and `/healthz` share.
/// Stale means no complete snapshot yet, or one older (`age`) than twice the audit period.
pub fn staleness(
    age: Option<chrono::Duration>,
    audit: &str,
    timezone: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Option<String> {
    let limit = period(audit, timezone, now).map(|p| p * 2);
    match (age, limit) {
        (None, _) => Some("no complete snapshot yet".to_owned()),
        (Some(age), Some(limit)) if age > limit => Some(format!(
            "the last complete snapshot is {} min old, more than twice the audit period ({} min)",
            age.num_minutes(),
            limit.num_minutes()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(expression: &str) -> Cron {
        crate::config::parse_cron(expression).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn occurrences_follow_the_zone_across_dst() {
        let paris: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        let daily = cron("0 0 8 * * *");
        // Saturday before the spring change: 08:00 CET is 07:00 UTC ...
        let saturday = next_occurrence(&daily, paris, utc("2026-03-27T12:00:00Z")).unwrap();
        assert_eq!(saturday, utc("2026-03-28T07:00:00Z"));
        // ... and on Sunday 08:00 CEST is 06:00 UTC.
        let sunday = next_occurrence(&daily, paris, saturday).unwrap();
        assert_eq!(sunday, utc("2026-03-29T06:00:00Z"));
    }

    #[test]
    fn the_next_occurrence_is_strictly_after() {
        let every_two = cron("*/2 * * * * *");
        let at = utc("2026-01-01T00:00:02Z");
        assert_eq!(
            next_occurrence(&every_two, chrono_tz::UTC, at).unwrap(),
            utc("2026-01-01T00:00:04Z")
        );
    }
}
