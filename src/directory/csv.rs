//! `type = "csv"`: a CSV file as a directory source.
//!
//! Two shapes, told apart by the header:
//! - the offboarding roster (`email`, optional `last_day`): every row is a person who left:
//!   `Deleted` without a last day, `Disabled("roster")` since the last day with one. Such a file
//!   lists nobody as active, so it cannot tell who is unknown;
//! - a directory export, with a `status` column (`active`, `deleted`, anything else is the
//!   directory's word for disabled), and optionally `aliases` (separated by `;` or spaces),
//!   `since` (an RFC 3339 time or a date), `id` and `assigned` (`true`/`false`: then the listing
//!   carries the app assignments).
//!
//! Header names are compared trimmed and case-insensitively. Any bad row fails the whole read.

use chrono::{DateTime, NaiveDate, Utc};

use super::DirectoryError;
use crate::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};

/// Reads the file at `path`.
pub async fn read(name: &str, path: &std::path::Path) -> Result<DirectoryListing, DirectoryError> {
    let fail = |message: String| DirectoryError {
        source: name.to_owned(),
        message,
    };
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|error| fail(format!("cannot read {}: {error}", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| fail(format!("{}: not UTF-8 text", path.display())))?;
    parse(&text).map_err(|message| fail(format!("{}: {message}", path.display())))
}

/// The listing a CSV text describes, or why it cannot be used (naming the line).
pub fn parse(text: &str) -> Result<DirectoryListing, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|error| format!("line 1: {error}"))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let email_col = column("email").ok_or("line 1: no \"email\" column in the header")?;
    let last_day_col = column("last_day");
    let status_col = column("status");
    let aliases_col = column("aliases");
    let since_col = column("since");
    let id_col = column("id");
    let assigned_col = column("assigned");
    let mut people = Vec::new();
    let mut assigned = assigned_col.map(|_| Vec::new());
    for record in reader.records() {
        let record = record.map_err(|error| error.to_string())?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |col: Option<usize>| {
            col.and_then(|c| record.get(c))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let email = cell(Some(email_col))
            .map(str::to_lowercase)
            .filter(|e| e.contains('@'))
            .ok_or_else(|| format!("line {line}: no email address"))?;
        let since = match cell(since_col).or(cell(last_day_col)) {
            None => None,
            Some(text) => Some(
                parse_time(text).ok_or_else(|| format!("line {line}: {text:?} is not a date"))?,
            ),
        };
        let status = match (status_col, cell(status_col)) {
            (None, _) if since.is_some() => DirectoryStatus::Disabled("roster".to_owned()),
            (None, _) => DirectoryStatus::Deleted,
            (Some(_), None) => return Err(format!("line {line}: no status")),
            (Some(_), Some(word)) if word.eq_ignore_ascii_case("active") => DirectoryStatus::Active,
            (Some(_), Some(word)) if word.eq_ignore_ascii_case("deleted") => {
                DirectoryStatus::Deleted
            }
            (Some(_), Some(word)) => DirectoryStatus::Disabled(word.to_owned()),
        };
        let aliases = cell(aliases_col)
            .map(|list| {
                list.split([';', ' ', ','])
                    .filter(|a| !a.is_empty())
                    .map(str::to_lowercase)
                    .collect()
            })
            .unwrap_or_default();
        if let (Some(list), Some(flag)) = (assigned.as_mut(), cell(assigned_col)) {
            match flag.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => list.push(email.clone()),
                "false" | "no" | "0" => {}
                other => return Err(format!("line {line}: assigned {other:?} is not true/false")),
            }
        }
        people.push(DirectoryPerson {
            id: cell(id_col).map_or_else(|| email.clone(), str::to_owned),
            email,
            aliases,
            status,
            status_since: since,
        });
    }
    Ok(DirectoryListing { people, assigned })
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roster_lists_departures_only() {
        let listing = parse("Email,Last_Day\nA@x.com,2026-01-02\nb@x.com,\n").unwrap();
        assert_eq!(listing.people.len(), 2);
        assert_eq!(listing.people[0].email, "a@x.com");
        assert_eq!(
            listing.people[0].status,
            DirectoryStatus::Disabled("roster".to_owned())
        );
        assert_eq!(
            listing.people[0].status_since,
            Some("2026-01-02T00:00:00Z".parse().unwrap())
        );
        assert_eq!(listing.people[1].status, DirectoryStatus::Deleted);
        assert_eq!(listing.assigned, None);
    }

    #[test]
    fn an_export_lists_everyone_with_aliases_and_assignments() {
        let listing = parse(
            "id,email,aliases,status,since,assigned\n\
             u1,j.doe@x.com,jane.doe@x.com;JD@x.com,SUSPENDED,2026-11-01T10:00:00Z,false\n\
             u2,bob@x.com,,active,,true\n",
        )
        .unwrap();
        assert_eq!(listing.people[0].id, "u1");
        assert_eq!(
            listing.people[0].aliases,
            vec!["jane.doe@x.com", "jd@x.com"]
        );
        assert_eq!(
            listing.people[0].status,
            DirectoryStatus::Disabled("SUSPENDED".to_owned())
        );
        assert_eq!(listing.people[1].status, DirectoryStatus::Active);
        assert_eq!(listing.assigned, Some(vec!["bob@x.com".to_owned()]));
    }

    #[test]
    fn a_bad_row_fails_the_whole_read() {
        assert!(parse("email,status\na@x.com,active\nnot-an-email,active\n")
            .unwrap_err()
            .contains("line 3"));
        assert!(parse("name\nx\n").unwrap_err().contains("email"));
        assert!(parse("email,last_day\na@x.com,soon\n")
            .unwrap_err()
            .contains("line 2"));
    }
}
