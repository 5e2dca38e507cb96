//! People as an identity provider (LDAP, Okta, Entra ID, Google Workspace, a CSV roster) lists
//! them: the vocabulary the directory sources produce, the store keeps and the directory rules
//! read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether a person may sign in, as the directory says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryStatus {
    Active,
    /// Disabled, suspended, locked out, deprovisioned or archived; the text is the directory's
    /// own word for it (`SUSPENDED`, `accountEnabled=false`, `userAccountControl:0x2`, ...).
    Disabled(String),
    /// Listed as deleted (Google's `deletionTime`, a roster row marked left).
    Deleted,
}

/// One person in a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryPerson {
    /// The directory's own stable id (DN, Okta id, Graph object id, Google id, roster email).
    pub id: String,
    /// The primary email, lower-cased.
    pub email: String,
    /// Other addresses that reach the same person (`proxyAddresses`, aliases, UPN), lower-cased.
    #[serde(default)]
    pub aliases: Vec<String>,
    pub status: DirectoryStatus,
    /// When the directory says the status last changed, where it says so.
    #[serde(default, deserialize_with = "status_since")]
    pub status_since: Option<DateTime<Utc>>,
}

/// `status_since` read as chrono reads an `Option<DateTime<Utc>>` (RFC 3339, any offset, or
/// null), the form chrono writes for a whole second (`2026-04-25T12:00:00Z`) read field by field
/// first: the audit reads every person of a directory from the store, nearly all of them with a
/// time, and chrono's general parser costs several times more.
fn status_since<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    use serde::de::{Error, Visitor};
    use std::fmt;

    struct Since;
    impl<'de> Visitor<'de> for Since {
        type Value = Option<DateTime<Utc>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an RFC 3339 formatted date and time string, or null")
        }
        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(Time).map(Some)
        }
    }
    struct Time;
    impl Visitor<'_> for Time {
        type Value = DateTime<Utc>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an RFC 3339 formatted date and time string")
        }
        fn visit_str<E: Error>(self, text: &str) -> Result<Self::Value, E> {
            match whole_second_utc(text) {
                Some(time) => Ok(time),
                None => text
                    .parse::<DateTime<chrono::FixedOffset>>()
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(E::custom),
            }
        }
    }
    deserializer.deserialize_option(Since)
}

/// `YYYY-MM-DDTHH:MM:SSZ` with a valid date and time (no leap second), else `None` (then
/// chrono's parser decides).
fn whole_second_utc(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(number(&b[0..4])?).ok()?;
    let date = chrono::NaiveDate::from_ymd_opt(year, number(&b[5..7])?, number(&b[8..10])?)?;
    let time = chrono::NaiveTime::from_hms_opt(
        number(&b[11..13])?,
        number(&b[14..16])?,
        number(&b[17..19])?,
    )?;
    Some(date.and_time(time).and_utc())
}

/// Everything one directory source returned in one complete read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryListing {
    pub people: Vec<DirectoryPerson>,
    /// Lower-cased emails assigned to the Claude application in the identity provider, when the
    /// source is configured to read app assignments; `None` when it is not.
    #[serde(default)]
    pub assigned: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form of `status_since` reads as chrono's own `Option<DateTime<Utc>>` reads it (or
    /// fails where that fails).
    #[test]
    fn status_since_reads_as_chrono_reads_it() {
        let values = [
            "null",
            r#""2026-04-25T12:00:00Z""#,
            r#""2026-04-25T12:00:00.250Z""#,
            r#""2026-04-25T14:00:00+02:00""#,
            r#""2026-04-25t12:00:00z""#,
            r#""2026-04-25 12:00:00Z""#,
            r#""0000-01-01T00:00:00Z""#,
            r#""2026-12-31T23:59:59Z""#,
            r#""2026-06-30T23:59:60Z""#,
            r#""2026-02-29T12:00:00Z""#,
            r#""2024-02-29T12:00:00Z""#,
            r#""2026-13-01T12:00:00Z""#,
            r#""2026-04-25T24:00:00Z""#,
            r#""2026-04-25T12:60:00Z""#,
            r#""2026-04-2xT12:00:00Z""#,
            r#""+2026-04-25T12:00:00Z""#,
            r#""2026-04-25T12:00:00""#,
            r#""2026-04-25T12:00:00\u005a""#,
            r#""""#,
            "12",
        ];
        for value in values {
            let ours = serde_json::from_str::<DirectoryPerson>(&format!(
                r#"{{"id":"1","email":"a@example.com","status":"active","status_since":{value}}}"#
            ))
            .map(|p| p.status_since);
            let chrono = serde_json::from_str::<Option<DateTime<Utc>>>(value);
            match (&ours, &chrono) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{value}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{value}: ours {ours:?}, chrono's {chrono:?}"),
            }
        }
        let missing: DirectoryPerson =
            serde_json::from_str(r#"{"id":"1","email":"a@example.com","status":"active"}"#)
                .unwrap();
        assert_eq!(missing.status_since, None);
    }
}
