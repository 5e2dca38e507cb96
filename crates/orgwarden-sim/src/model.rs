//! The simulator's stored objects and the ordered tables that hold them.
//!
//! Objects are kept in their stored form (for example an invite's stored status is `pending`,
//! `accepted` or `deleted`; `expired` is derived from the clock when the invite is shown) and are
//! turned into wire JSON by `views`. Roles and statuses are plain strings on purpose: the API
//! validates what a client may write, while tests may store any value (a role the client has never
//! heard of, say) to check that the client keeps unknown enum values as text.
//!
//! [`Table`] gives every list its creation order: each row gets a sequence number from a counter
//! that only grows, rows live in a `BTreeMap` keyed by that number, and a `HashMap` maps ids to
//! numbers. A page is one `O(log n)` range lookup plus the rows it returns, and a row inserted or
//! deleted between two page requests can neither shift nor repeat the rows of another page. The id
//! index keeps the sequence number of deleted rows ("tombstones"), so a cursor naming an object that
//! was deleted after the client saw it still resumes at the right place.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Bound;

use chrono::{DateTime, SubsecRound, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How long an invite stays acceptable (§6.3: 21 days, not configurable).
pub(crate) const INVITE_LIFETIME_DAYS: i64 = 21;

/// Truncates a time to whole microseconds, the precision of every timestamp the API shows, so
/// that a stored time survives a JSON round trip unchanged and comparisons agree with the wire.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// The Admin API's timestamp format: RFC 3339, six fractional digits, `Z`.
const TS_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// Parses any RFC 3339 time into UTC, truncated to microseconds.
pub(crate) fn parse_ts(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| micros(t.with_timezone(&Utc)))
}

/// A timestamp that serializes in the API's format; used by the wire views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Micros(pub DateTime<Utc>);

impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.format(TS_FORMAT))
    }
}

/// Serde adapter for stored `DateTime<Utc>` fields, so state files use the API's format too.
pub(crate) mod ts {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        Micros(*t).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        parse_ts(&text).map_err(D::Error::custom)
    }

    /// The same adapter for optional timestamps (`null` when absent).
    pub(crate) mod opt {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            t.map(Micros).serialize(s)
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => parse_ts(&text).map(Some).map_err(D::Error::custom),
            }
        }
    }
}

/// The organization itself (§3.1).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Organization {
    pub id: String,
    pub name: String,
}

/// A current member of the organization (§3.2).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    #[serde(with = "ts")]
    pub added_at: DateTime<Utc>,
}

/// Someone who was a member and has been removed. The API never shows them, but their API keys
/// remain, which is exactly the orphaned-key case orgwarden must find.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct FormerMember {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    #[serde(with = "ts")]
    pub added_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub removed_at: DateTime<Utc>,
}

/// An invite (§3.3). `status` is the stored status: `pending`, `accepted` or `deleted` (any other
/// text is shown as is); a pending invite whose `expires_at` has passed is shown as `expired`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Invite {
    pub id: String,
    pub email: String,
    pub role: String,
    #[serde(with = "ts")]
    pub invited_at: DateTime<Utc>,
    #[serde(with = "ts")]
    pub expires_at: DateTime<Utc>,
    pub status: String,
    #[serde(default, with = "ts::opt")]
    pub accepted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub rbac_group_ids: Vec<String>,
}

impl Invite {
    /// The status the API shows at `now`: stored `pending` reads as `expired` from `expires_at` on.
    pub(crate) fn status_at(&self, now: DateTime<Utc>) -> &str {
        if self.status == "pending" && self.expires_at <= now {
            "expired"
        } else {
            &self.status
        }
    }
}

/// `allowed_inference_geos`: either a list of geos or the word `unrestricted`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub(crate) enum AllowedGeos {
    List(Vec<String>),
    Keyword(String),
}

/// A workspace's data residency settings (§3.4).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct DataResidency {
    pub workspace_geo: String,
    pub allowed_inference_geos: AllowedGeos,
    pub default_inference_geo: String,
}

impl Default for DataResidency {
    /// The documented defaults: `us`, `unrestricted`, `global`.
    fn default() -> Self {
        DataResidency {
            workspace_geo: "us".to_string(),
            allowed_inference_geos: AllowedGeos::Keyword("unrestricted".to_string()),
            default_inference_geo: "global".to_string(),
        }
    }
}

/// A workspace (§3.4), including the Default Workspace, which the state names separately.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Workspace {
    pub id: String,
    pub name: String,
    pub display_color: String,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    #[serde(default, with = "ts::opt")]
    pub archived_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub data_residency: DataResidency,
    pub compartment_id: String,
    #[serde(default)]
    pub external_key_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// An explicit workspace membership (§3.5).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct WorkspaceMember {
    pub workspace_id: String,
    pub user_id: String,
    pub workspace_role: String,
}

/// `created_by` of an API key: a user or a service account.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct CreatedBy {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// `principal` of an API key (2026): whose identity a personal or service-account key carries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub(crate) enum Principal {
    #[serde(rename = "user_actor")]
    User { user_id: String },
    #[serde(rename = "service_account_actor")]
    ServiceAccount { service_account_id: String },
}

/// An API key (§3.6). `workspace_id` is the real workspace id, the Default Workspace's included;
/// `None` means an organization-scoped key. The wire view turns the Default Workspace's id into
/// `workspace_id: null` and derives `scope` from this field. `status` is the stored status; an
/// `active` or `inactive` key whose `expires_at` has passed is shown as `expired`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct ApiKey {
    pub id: String,
    pub name: String,
    pub workspace_id: Option<String>,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
    pub created_by: Option<CreatedBy>,
    pub partial_key_hint: Option<String>,
    pub status: String,
    #[serde(default, with = "ts::opt")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub principal: Option<Principal>,
}

impl ApiKey {
    /// The status the API shows at `now`.
    pub(crate) fn status_at(&self, now: DateTime<Utc>) -> &str {
        match self.expires_at {
            Some(t) if t <= now && (self.status == "active" || self.status == "inactive") => {
                "expired"
            }
            _ => &self.status,
        }
    }
}

/// A service account that created some keys. The simulator does not serve the (OAuth-only)
/// service-account endpoints; the record only explains the `svac_` ids in `created_by`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct ServiceAccount {
    pub id: String,
    pub name: String,
    #[serde(with = "ts")]
    pub created_at: DateTime<Utc>,
}

/// Rows that a [`Table`] can index by their id.
pub(crate) trait Keyed {
    fn key(&self) -> &str;
}

impl Keyed for User {
    fn key(&self) -> &str {
        &self.id
    }
}
impl Keyed for Invite {
    fn key(&self) -> &str {
        &self.id
    }
}
impl Keyed for Workspace {
    fn key(&self) -> &str {
        &self.id
    }
}
impl Keyed for ApiKey {
    fn key(&self) -> &str {
        &self.id
    }
}
/// Within one workspace's member table a member is named by its user id.
impl Keyed for WorkspaceMember {
    fn key(&self) -> &str {
        &self.user_id
    }
}

/// Which page of a list is wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cursor {
    /// The first page.
    Start,
    /// The page immediately after this object.
    After(String),
    /// The page immediately before this object.
    Before(String),
}

/// One page of rows, in ascending creation order, and whether more rows match in the direction
/// of travel (forwards for `Start` and `After`, backwards for `Before`).
pub(crate) struct Page<'a, T> {
    pub rows: Vec<&'a T>,
    pub has_more: bool,
}

/// A list in creation order with an id index; see the module documentation.
#[derive(Clone)]
pub(crate) struct Table<T> {
    rows: BTreeMap<u64, T>,
    index: HashMap<String, u64>,
    next_seq: u64,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: BTreeMap::new(),
            index: HashMap::new(),
            next_seq: 0,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.rows.values()).finish()
    }
}

impl<T: Keyed> Table<T> {
    /// Number of live rows.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Appends a row at the end of the creation order. A live row with the same id is replaced
    /// in place (callers check for duplicates first; replacing keeps the index consistent).
    pub(crate) fn insert(&mut self, row: T) {
        if let Some(&seq) = self.index.get(row.key()) {
            if let Some(slot) = self.rows.get_mut(&seq) {
                *slot = row;
                return;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.index.insert(row.key().to_string(), seq);
        self.rows.insert(seq, row);
    }

    /// The live row with this id.
    pub(crate) fn get(&self, id: &str) -> Option<&T> {
        self.index.get(id).and_then(|seq| self.rows.get(seq))
    }

    /// The live row with this id, mutably. Callers must not change the id.
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        match self.index.get(id) {
            Some(seq) => self.rows.get_mut(seq),
            None => None,
        }
    }

    /// Removes a row and keeps its id as a tombstone so cursors naming it still work.
    pub(crate) fn remove(&mut self, id: &str) -> Option<T> {
        let seq = *self.index.get(id)?;
        self.rows.remove(&seq)
    }

    /// Live rows in creation order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.rows.values()
    }

    /// Live rows in creation order, mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.rows.values_mut()
    }

    /// Returns up to `limit` rows that satisfy `keep`, starting from `cursor`; `None` when the
    /// cursor names an id this table has never held. Only the rows visited are touched: without a
    /// filter a page costs one `O(log n)` lookup plus `limit + 1` steps.
    pub(crate) fn page<'a>(
        &'a self,
        cursor: &Cursor,
        limit: usize,
        mut keep: impl FnMut(&T) -> bool,
    ) -> Option<Page<'a, T>> {
        // One row more than the page is fetched: its presence is what `has_more` reports.
        let wanted = limit.saturating_add(1);
        let mut rows: Vec<&T> = match cursor {
            Cursor::Start => self
                .rows
                .values()
                .filter(|row| keep(row))
                .take(wanted)
                .collect(),
            Cursor::After(id) => {
                let seq = *self.index.get(id)?;
                self.rows
                    .range((Bound::Excluded(seq), Bound::Unbounded))
                    .map(|(_, row)| row)
                    .filter(|row| keep(row))
                    .take(wanted)
                    .collect()
            }
            Cursor::Before(id) => {
                let seq = *self.index.get(id)?;
                self.rows
                    .range(..seq)
                    .rev()
                    .map(|(_, row)| row)
                    .filter(|row| keep(row))
                    .take(wanted)
                    .collect()
            }
        };
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        if matches!(cursor, Cursor::Before(_)) {
            // Walked backwards to find the page; the page itself is still shown oldest first.
            rows.reverse();
        }
        Some(Page { rows, has_more })
    }

    /// Builds a table from rows in creation order, refusing duplicate ids.
    pub(crate) fn from_rows(rows: Vec<T>) -> Result<Self, String> {
        let mut table = Table::default();
        for row in rows {
            if table.index.contains_key(row.key()) {
                return Err(format!("duplicate id {}", row.key()));
            }
            table.insert(row);
        }
        Ok(table)
    }
}

impl<T: Serialize> Serialize for Table<T> {
    /// A table is stored as a plain JSON array in creation order; sequence numbers and tombstones
    /// are an in-memory detail, rebuilt on load.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.rows.values())
    }
}

impl<'de, T: Deserialize<'de> + Keyed> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rows = Vec::<T>::deserialize(d)?;
        Table::from_rows(rows).map_err(D::Error::custom)
    }
}

/// Explicit workspace memberships: one member table per workspace, so each workspace's member
/// list pages in `O(log n)` like the others. Stored as one flat JSON array.
#[derive(Clone, Debug, Default)]
pub(crate) struct Memberships {
    by_workspace: BTreeMap<String, Table<WorkspaceMember>>,
}

impl Memberships {
    /// The member table of one workspace, if it ever had a member.
    pub(crate) fn table(&self, workspace_id: &str) -> Option<&Table<WorkspaceMember>> {
        self.by_workspace.get(workspace_id)
    }

    /// The member table of one workspace, created on first use.
    pub(crate) fn table_mut(&mut self, workspace_id: &str) -> &mut Table<WorkspaceMember> {
        self.by_workspace
            .entry(workspace_id.to_string())
            .or_default()
    }

    /// One membership.
    pub(crate) fn get(&self, workspace_id: &str, user_id: &str) -> Option<&WorkspaceMember> {
        self.table(workspace_id).and_then(|t| t.get(user_id))
    }

    /// Adds a membership (the caller checked it is new) at the end of its workspace's list.
    pub(crate) fn insert(&mut self, member: WorkspaceMember) {
        let workspace_id = member.workspace_id.clone();
        self.table_mut(&workspace_id).insert(member);
    }

    /// Removes one membership (keeping a tombstone for cursors).
    pub(crate) fn remove(&mut self, workspace_id: &str, user_id: &str) -> Option<WorkspaceMember> {
        self.by_workspace.get_mut(workspace_id)?.remove(user_id)
    }

    /// One membership, mutably.
    pub(crate) fn get_mut(
        &mut self,
        workspace_id: &str,
        user_id: &str,
    ) -> Option<&mut WorkspaceMember> {
        self.by_workspace.get_mut(workspace_id)?.get_mut(user_id)
    }

    /// Removes every membership of a user, as when the user leaves the organization.
    pub(crate) fn remove_user_everywhere(&mut self, user_id: &str) {
        for table in self.by_workspace.values_mut() {
            table.remove(user_id);
        }
    }

    /// Total number of memberships.
    pub(crate) fn len(&self) -> usize {
        self.by_workspace.values().map(Table::len).sum()
    }

    /// Every membership, grouped by workspace id and in creation order within a workspace.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &WorkspaceMember> {
        self.by_workspace.values().flat_map(|t| t.iter())
    }
}

impl Serialize for Memberships {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Memberships {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rows = Vec::<WorkspaceMember>::deserialize(d)?;
        let mut out = Memberships::default();
        for row in rows {
            if out.get(&row.workspace_id, &row.user_id).is_some() {
                return Err(D::Error::custom(format!(
                    "duplicate membership of {} in {}",
                    row.user_id, row.workspace_id
                )));
            }
            out.insert(row);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    struct Row {
        id: String,
    }
    impl Keyed for Row {
        fn key(&self) -> &str {
            &self.id
        }
    }

    fn table(n: usize) -> Table<Row> {
        let mut t = Table::default();
        for i in 0..n {
            t.insert(Row {
                id: format!("r{i}"),
            });
        }
        t
    }

    fn ids(page: &Page<'_, Row>) -> Vec<String> {
        page.rows.iter().map(|r| r.id.clone()).collect()
    }

    #[test]
    fn pages_forwards_and_backwards() {
        let t = table(5);
        let p = t.page(&Cursor::Start, 2, |_| true).expect("start");
        assert_eq!(ids(&p), ["r0", "r1"]);
        assert!(p.has_more);
        let p = t
            .page(&Cursor::After("r3".into()), 2, |_| true)
            .expect("known cursor");
        assert_eq!(ids(&p), ["r4"]);
        assert!(!p.has_more);
        let p = t
            .page(&Cursor::Before("r3".into()), 2, |_| true)
            .expect("known cursor");
        assert_eq!(ids(&p), ["r1", "r2"]);
        assert!(p.has_more);
        let p = t
            .page(&Cursor::Before("r2".into()), 2, |_| true)
            .expect("known cursor");
        assert_eq!(ids(&p), ["r0", "r1"]);
        assert!(!p.has_more);
        assert!(t.page(&Cursor::After("nope".into()), 2, |_| true).is_none());
    }

    #[test]
    fn tombstones_keep_cursors_working() {
        let mut t = table(5);
        assert!(t.remove("r2").is_some());
        assert!(t.get("r2").is_none());
        let p = t
            .page(&Cursor::After("r2".into()), 10, |_| true)
            .expect("a deleted id is still a known cursor");
        assert_eq!(ids(&p), ["r3", "r4"]);
        // Re-adding an id puts it at the end of the creation order, as a new object would be.
        t.insert(Row { id: "r2".into() });
        let all: Vec<&str> = t.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(all, ["r0", "r1", "r3", "r4", "r2"]);
    }

    #[test]
    fn serializes_as_an_array_and_refuses_duplicates() {
        let t = table(3);
        let text = serde_json::to_string(&t).expect("serializable");
        assert_eq!(text, r#"[{"id":"r0"},{"id":"r1"},{"id":"r2"}]"#);
        let back: Table<Row> = serde_json::from_str(&text).expect("round trip");
        assert_eq!(back.len(), 3);
        assert!(serde_json::from_str::<Table<Row>>(r#"[{"id":"a"},{"id":"a"}]"#).is_err());
    }

    #[test]
    fn timestamps_use_microseconds_and_z() {
        let t = parse_ts("2024-10-30T23:58:27.427722123+00:00").expect("valid");
        let json = serde_json::to_string(&Micros(t)).expect("serializable");
        assert_eq!(json, "\"2024-10-30T23:58:27.427722Z\"");
    }
}
