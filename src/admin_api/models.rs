//! Wire models of the Admin API objects, named exactly as the contract names them.

use serde::{Deserialize, Serialize};

pub use crate::org::model::*;

/// The list envelope shared by every classic list endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
    #[serde(default)]
    pub first_id: Option<String>,
    #[serde(default)]
    pub last_id: Option<String>,
}

/// The body of `POST /v1/organizations/api_keys/{id}`; omitted fields are unchanged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApiKeyUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ApiKeyStatus>,
}

/// The envelope of the report endpoints (§7.1, §7.3): `next_page` instead of cursors.
#[derive(Debug, Clone, Deserialize)]
pub struct ReportPage<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub next_page: Option<String>,
}

/// One time bucket of the messages usage report.
#[derive(Debug, Clone, Deserialize)]
pub struct UsageBucket {
    /// RFC 3339; the bucket's UTC day for `bucket_width = 1d`.
    pub starting_at: String,
    #[serde(default)]
    pub ending_at: Option<String>,
    #[serde(default = "Vec::new")]
    pub results: Vec<UsageItem>,
}

/// One result of a bucket: token counts for one combination of the grouped dimensions. Every
/// field is optional so that a missing or `null` count never fails a report.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UsageItem {
    #[serde(default)]
    pub api_key_id: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub uncached_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation: Option<CacheCreation>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub server_tool_use: Option<ServerToolUse>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CacheCreation {
    #[serde(default)]
    pub ephemeral_1h_input_tokens: Option<u64>,
    #[serde(default)]
    pub ephemeral_5m_input_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServerToolUse {
    #[serde(default)]
    pub web_search_requests: Option<u64>,
}

impl UsageItem {
    /// Every input token: uncached, written to the cache and read from it.
    pub fn input_tokens(&self) -> u64 {
        let cache = self.cache_creation.as_ref().map_or(0, |c| {
            c.ephemeral_1h_input_tokens
                .unwrap_or(0)
                .saturating_add(c.ephemeral_5m_input_tokens.unwrap_or(0))
        });
        self.uncached_input_tokens
            .unwrap_or(0)
            .saturating_add(cache)
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
    }

    pub fn output_tokens(&self) -> u64 {
        self.output_tokens.unwrap_or(0)
    }

    pub fn web_search_requests(&self) -> u64 {
        self.server_tool_use
            .as_ref()
            .and_then(|s| s.web_search_requests)
            .unwrap_or(0)
    }
}

/// One actor's day in the Claude Code report.
#[derive(Debug, Clone, Deserialize)]
pub struct ClaudeCodeItem {
    #[serde(default)]
    pub actor: Option<ClaudeCodeActor>,
    #[serde(default)]
    pub core_metrics: Option<CoreMetrics>,
    /// RFC 3339 (the start of the UTC day).
    #[serde(default)]
    pub date: Option<String>,
}

/// `{type: "user_actor", email_address}` or `{type: "api_actor", api_key_name}`; another type is
/// kept as text and skipped by the ingest.
#[derive(Debug, Clone, Deserialize)]
pub struct ClaudeCodeActor {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub email_address: Option<String>,
    #[serde(default)]
    pub api_key_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CoreMetrics {
    #[serde(default)]
    pub num_sessions: Option<u64>,
    #[serde(default)]
    pub lines_of_code: Option<LinesOfCode>,
    #[serde(default)]
    pub commits_by_claude_code: Option<u64>,
    #[serde(default)]
    pub pull_requests_by_claude_code: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LinesOfCode {
    #[serde(default)]
    pub added: Option<u64>,
    #[serde(default)]
    pub removed: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_values_and_fields_are_kept_not_fatal() {
        let user: User = serde_json::from_value(serde_json::json!({
            "type": "user", "id": "user_01", "email": "a@example.com", "name": "A",
            "role": "galactic_overlord", "added_at": "2024-10-30T23:58:27.427722Z",
            "brand_new_field": {"nested": true}
        }))
        .unwrap();
        assert_eq!(user.role, OrgRole::Other("galactic_overlord".into()));
        assert_eq!(
            serde_json::to_value(&user.role).unwrap(),
            "galactic_overlord"
        );
        assert!(!user.role.is_admin());
    }

    #[test]
    fn classic_key_without_2026_fields_parses() {
        let key: ApiKey = serde_json::from_value(serde_json::json!({
            "type": "api_key", "id": "apikey_01", "name": "k", "workspace_id": null,
            "created_at": "2024-10-30T23:58:27.427722Z",
            "created_by": {"id": "user_01", "type": "user"},
            "partial_key_hint": "sk-ant-api03-R2D...igAA", "status": "active"
        }))
        .unwrap();
        assert_eq!(key.owner(), KeyOwner::User("user_01"));
        assert_eq!(key.status, ApiKeyStatus::Active);
    }

    #[test]
    fn key_owner_prefers_principal_then_created_by() {
        let base = |principal: serde_json::Value, created_by: serde_json::Value| -> ApiKey {
            serde_json::from_value(serde_json::json!({
                "id": "apikey_01", "name": "k", "created_at": "2024-10-30T23:58:27Z",
                "status": "active", "principal": principal, "created_by": created_by
            }))
            .unwrap()
        };
        let k = base(
            serde_json::json!({"type": "user_actor", "user_id": "user_p"}),
            serde_json::json!({"id": "user_c", "type": "user"}),
        );
        assert_eq!(k.owner(), KeyOwner::User("user_p"));
        let k = base(
            serde_json::json!({"type": "service_account_actor", "service_account_id": "svac_1"}),
            serde_json::json!({"id": "user_c", "type": "user"}),
        );
        assert_eq!(k.owner(), KeyOwner::NonPerson);
        let k = base(
            serde_json::Value::Null,
            serde_json::json!({"id": "svac_1", "type": "service_account"}),
        );
        assert_eq!(k.owner(), KeyOwner::NonPerson);
        let k = base(serde_json::Value::Null, serde_json::Value::Null);
        assert_eq!(k.owner(), KeyOwner::Unattributed);
    }

    #[test]
    fn usage_reports_parse_tolerantly() {
        let page: ReportPage<UsageBucket> = serde_json::from_value(serde_json::json!({
            "data": [{"starting_at": "2026-01-01T00:00:00Z", "ending_at": "2026-01-02T00:00:00Z",
              "results": [
                {"uncached_input_tokens": 10, "cache_creation": {"ephemeral_5m_input_tokens": 2,
                   "ephemeral_1h_input_tokens": null}, "cache_read_input_tokens": 3,
                 "output_tokens": 4, "server_tool_use": {"web_search_requests": 1},
                 "api_key_id": "apikey_1", "account_id": "user_1", "service_tier": "warp",
                 "brand_new": [1, 2]},
                {"api_key_id": null, "output_tokens": null}
              ]}],
            "has_more": false, "next_page": null, "extra": true
        }))
        .unwrap();
        let item = &page.data[0].results[0];
        assert_eq!(item.input_tokens(), 15);
        assert_eq!(item.output_tokens(), 4);
        assert_eq!(item.web_search_requests(), 1);
        assert_eq!(page.data[0].results[1].input_tokens(), 0);

        let page: ReportPage<ClaudeCodeItem> = serde_json::from_value(serde_json::json!({
            "data": [
                {"actor": {"type": "user_actor", "email_address": "A@x.io"},
                 "core_metrics": {"num_sessions": 2, "lines_of_code": {"added": 5}},
                 "date": "2026-01-01T00:00:00Z", "customer_type": "martian"},
                {"actor": {"type": "robot_actor", "serial": 7}}
            ],
            "has_more": true, "next_page": "p2"
        }))
        .unwrap();
        assert_eq!(page.data[1].actor.as_ref().unwrap().kind, "robot_actor");
        assert_eq!(page.next_page.as_deref(), Some("p2"));
    }
}
