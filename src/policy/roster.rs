//! Parsing the offboarding roster: a CSV of people who left, with an optional last day.
//!
//! This module owns turning the roster's *text* into [`RosterEntry`] values and explaining, by
//! line number, why a roster cannot be used. It must not read the file itself (the caller does,
//! so policy stays free of I/O) and it must not guess: a roster that is ambiguous is rejected as
//! a whole, because acting on half a roster would silently skip people who left.

use chrono::NaiveDate;
use csv::{ReaderBuilder, StringRecord, Trim};
use serde::Serialize;

/// One person on the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosterEntry {
    /// The email, trimmed and lowercased so that matching is case-insensitive.
    pub email: String,
    /// The last working day; `None` means the person is already gone.
    pub last_day: Option<NaiveDate>,
    /// The line of the CSV this entry starts on (1 is the header).
    pub line: u64,
}

/// Why a roster could not be read; the message always names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RosterError {
    pub line: u64,
    pub message: String,
}

impl RosterError {
    fn new(line: u64, message: impl Into<String>) -> RosterError {
        RosterError {
            line,
            message: message.into(),
        }
    }
}

/// Parses roster CSV `text`. The header must contain `email_column`; `last_day_column` is
/// optional, and without it every listed person counts as already gone. Header names are
/// compared trimmed and case-insensitively, since spreadsheets like to capitalise them.
pub fn parse_roster(
    text: &str,
    email_column: &str,
    last_day_column: &str,
) -> Result<Vec<RosterEntry>, RosterError> {
    // A UTF-8 byte order mark is common in spreadsheet exports and would otherwise become part of
    // the first header name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = ReaderBuilder::new()
        .has_headers(true)
        // Lengths are checked below so that the error can suggest the likely cause.
        .flexible(true)
        .trim(Trim::All)
        .from_reader(text.as_bytes());

    let headers = reader
        .headers()
        .map_err(|error| csv_error(text, &error, 1))?
        .clone();
    let header_line = line_of(text, &headers, 1);
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name.trim()))
    };
    let Some(email_at) = column(email_column) else {
        let found = if headers.iter().all(str::is_empty) {
            "the roster is empty".to_owned()
        } else {
            format!("found {}", headers.iter().collect::<Vec<_>>().join(", "))
        };
        return Err(RosterError::new(
            header_line,
            format!("no {email_column:?} column in the header ({found})"),
        ));
    };
    let last_day_at = column(last_day_column);

    let mut entries = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|error| csv_error(text, &error, header_line + 1))?;
        let line = line_of(text, &record, header_line + 1);
        if record.len() != headers.len() {
            return Err(RosterError::new(
                line,
                format!(
                    "found {} field(s) where the header has {}; check the quoting",
                    record.len(),
                    headers.len()
                ),
            ));
        }
        let email = record.get(email_at).unwrap_or_default();
        let last_day = last_day_at
            .and_then(|at| record.get(at))
            .unwrap_or_default();
        // An unclosed quote makes the CSV reader swallow the following lines into one field; the
        // embedded newline is the only trace it leaves.
        if email.contains('\n') || last_day.contains('\n') {
            return Err(RosterError::new(
                line,
                "a quoted field runs across lines; check for an unclosed quote",
            ));
        }
        if email.is_empty() {
            return Err(RosterError::new(line, format!("{email_column} is empty")));
        }
        match email.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {}
            _ => {
                return Err(RosterError::new(
                    line,
                    format!("{email_column} {email:?} is not an email address"),
                ))
            }
        }
        let last_day = if last_day.is_empty() {
            None
        } else {
            Some(parse_day(last_day).ok_or_else(|| {
                RosterError::new(
                    line,
                    format!("{last_day_column} {last_day:?} is not a date YYYY-MM-DD"),
                )
            })?)
        };
        entries.push(RosterEntry {
            email: email.to_lowercase(),
            last_day,
            line,
        });
    }
    Ok(entries)
}

/// Strict `YYYY-MM-DD`: chrono alone would also accept five-digit or signed years.
fn parse_day(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// The line a record starts on. The CSV reader's own line counter miscounts blank lines and CRLF
/// endings, and its byte offset points just after the previous record's terminator, so the line
/// is counted here: skip the line breaks that precede the record, then count the ones before it.
fn line_of(text: &str, record: &StringRecord, fallback: u64) -> u64 {
    record
        .position()
        .map_or(fallback, |p| line_at(text, p.byte()))
}

fn line_at(text: &str, byte: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
    while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
        start += 1;
    }
    let newlines = bytes[..start].iter().filter(|&&b| b == b'\n').count();
    newlines as u64 + 1
}

fn csv_error(text: &str, error: &csv::Error, fallback: u64) -> RosterError {
    let line = error
        .position()
        .map_or(fallback, |p| line_at(text, p.byte()));
    RosterError::new(line, format!("unreadable CSV: {error}"))
}
