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
}
