//! End-to-end tests of the simulator over real TCP, with `reqwest` as the client.
//!
//! Each test starts its own server on an ephemeral loopback port with a frozen clock, so tests
//! run in parallel and never depend on the time of day.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::model::parse_ts;
use super::*;

fn t0() -> DateTime<Utc> {
    parse_ts("2026-01-01T00:00:00Z").expect("valid test time")
}

struct Sim {
    h: SimHandle,
    c: reqwest::Client,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    /// The `error.type` of an error answer, after checking the common error shape.
    fn error_type(&self) -> &str {
        assert_eq!(
            self.body["type"], "error",
            "not an error body: {}",
            self.body
        );
        let rid = self.headers["request-id"].to_str().expect("ascii header");
        assert_eq!(
            self.body["request_id"], rid,
            "body and header request ids differ"
        );
        self.body["error"]["type"]
            .as_str()
            .expect("error.type is text")
    }
}

impl Sim {
    async fn start(opts: SimOptions) -> Sim {
        let h = SimHandle::start_local(opts)
            .await
            .expect("simulator starts");
        Sim {
            h,
            c: reqwest::Client::new(),
        }
    }

    /// The default small organization, frozen at `t0()`.
    async fn small() -> Sim {
        Sim::start(SimOptions {
            now: Some(t0()),
            ..SimOptions::default()
        })
        .await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req
            .header("x-api-key", DEMO_ADMIN_KEY)
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body read");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?}"));
        assert!(headers.contains_key("request-id"), "no request-id header");
        Answer {
            status,
            headers,
            body,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.h.base_url())
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.c.get(self.url(path))).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.c.post(self.url(path)).json(&body)).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.send(self.c.delete(self.url(path))).await
    }

    /// Every item of a list, following `after_id` from page to page.
    async fn walk(&self, path: &str, limit: usize) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(a) = &after {
                url.push_str(&format!("&after_id={a}"));
            }
            let a = self.get(&url).await;
            assert_eq!(a.status, StatusCode::OK, "{url}: {}", a.body);
            let data = a.body["data"].as_array().expect("data array").clone();
            assert!(data.len() <= limit);
            out.extend(data);
            if !a.body["has_more"].as_bool().expect("has_more bool") {
                return out;
            }
            after = Some(a.body["last_id"].as_str().expect("last_id").to_string());
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_string())
        .collect()
}

fn timestamp_ok(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    // 2024-10-30T23:58:27.427722Z
    s.len() == 27 && s.ends_with('Z') && s.as_bytes()[19] == b'.' && parse_ts(s).is_ok()
}

mod usage;

// ---- Protocol: auth, request ids, errors ----

#[tokio::test]
async fn auth_request_ids_and_unknown_routes() {
    let sim = Sim::small().await;
    let url = sim.url("/v1/organizations/me");

    for key in [None, Some("sk-ant-admin01-wrong")] {
        let mut req = sim.c.get(&url);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let resp = req.send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let rid = resp.headers()["request-id"]
            .to_str()
            .expect("ascii")
            .to_string();
        let body: Value = resp.json().await.expect("JSON error body");
        assert_eq!(
            body,
            json!({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":rid})
        );
    }

    // anthropic-version may be missing.
    let resp = sim
        .c
        .get(&url)
        .header("x-api-key", DEMO_ADMIN_KEY)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let org: Value = resp.json().await.expect("JSON");
    assert_eq!(org["type"], "organization");
    assert_eq!(org["name"], "Example Corp");
    assert_eq!(org["id"].as_str().expect("id").len(), 36);

    let unknown = sim.get("/v1/organizations/nothing/here").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_type(), "not_found_error");

    let wrong_method = sim.delete("/v1/organizations/api_keys").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.error_type(), "invalid_request_error");

    let mut seen = HashSet::new();
    for _ in 0..50 {
        let a = sim.get("/v1/organizations/me").await;
        let rid = a.headers["request-id"].to_str().expect("ascii").to_string();
        assert!(rid.starts_with("req_01") && rid.len() == 28, "{rid}");
        assert!(rid[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(seen.insert(rid), "request ids repeat");
    }
    assert!(sim.h.requests_served() >= 50 + 5);
}

#[tokio::test]
async fn objects_have_the_documented_shapes() {
    let sim = Sim::small().await;
    let users = sim.walk("/v1/organizations/users", 100).await;
    assert_eq!(users.len(), 40);
    for u in &users {
        let keys: HashSet<&str> = u
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            HashSet::from(["type", "id", "email", "name", "role", "added_at"])
        );
        assert_eq!(u["type"], "user");
        let id = u["id"].as_str().expect("id");
        assert!(id.starts_with("user_01") && id.len() == 29, "{id}");
        assert!(timestamp_ok(&u["added_at"]), "{}", u["added_at"]);
    }

    let invites = sim.walk("/v1/organizations/invites", 100).await;
    for i in &invites {
        for field in [
            "type",
            "id",
            "email",
            "role",
            "invited_at",
            "expires_at",
            "status",
            "accepted_at",
            "rbac_group_ids",
        ] {
            assert!(i.get(field).is_some(), "invite lacks {field}: {i}");
        }
        assert!(i["id"].as_str().expect("id").starts_with("invite_01"));
        assert!(timestamp_ok(&i["expires_at"]));
    }

    let workspaces = sim
        .walk("/v1/organizations/workspaces?include_archived=true", 100)
        .await;
    for w in &workspaces {
        for field in [
            "type",
            "id",
            "name",
            "display_color",
            "created_at",
            "archived_at",
            "data_residency",
            "compartment_id",
            "external_key_id",
            "tags",
        ] {
            assert!(w.get(field).is_some(), "workspace lacks {field}: {w}");
        }
        assert!(w["id"].as_str().expect("id").starts_with("wrkspc_01"));
    }

    let keys = sim.walk("/v1/organizations/api_keys", 100).await;
    assert_eq!(keys.len(), 60);
    for k in &keys {
        for field in [
            "type",
            "id",
            "name",
            "workspace_id",
            "created_at",
            "created_by",
            "partial_key_hint",
            "status",
            "expires_at",
            "principal",
            "scope",
        ] {
            assert!(k.get(field).is_some(), "key lacks {field}: {k}");
        }
        assert!(k["id"].as_str().expect("id").starts_with("apikey_01"));
        assert!(k["partial_key_hint"]
            .as_str()
            .expect("hint")
            .starts_with("sk-ant-api03-"));
    }
    // The list holds exactly what the state accessors say the API serves.
    let truth = sim.h.snapshot_state();
    assert_eq!(keys, truth.api_keys());
    assert_eq!(users, truth.users());
    assert_eq!(invites, truth.invites());
    assert_eq!(workspaces, truth.workspaces());

    // A single key read agrees with the list.
    let one = sim
        .get(&format!(
            "/v1/organizations/api_keys/{}",
            keys[3]["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(one.body, keys[3]);
}

// ---- Pagination ----

#[tokio::test]
async fn pagination_cursors_and_limits() {
    let sim = Sim::small().await;
    let all = sim.h.snapshot_state().users();
    let all_ids = ids(&all);

    // Forward walks with several page sizes see every user once, in order.
    for limit in [1, 7, 20, 40, 1000] {
        assert_eq!(
            ids(&sim.walk("/v1/organizations/users", limit).await),
            all_ids
        );
    }

    // The default limit is 20.
    let first = sim.get("/v1/organizations/users").await;
    assert_eq!(first.body["data"].as_array().expect("data").len(), 20);
    assert_eq!(first.body["has_more"], true);
    assert_eq!(first.body["first_id"], all_ids[0].as_str());
    assert_eq!(first.body["last_id"], all_ids[19].as_str());

    // before_id: the page immediately before, ascending, has_more about the backward direction.
    let p = sim
        .get(&format!(
            "/v1/organizations/users?limit=5&before_id={}",
            all_ids[12]
        ))
        .await;
    assert_eq!(
        ids(p.body["data"].as_array().expect("data")),
        all_ids[7..12]
    );
    assert_eq!(p.body["has_more"], true);
    let p = sim
        .get(&format!(
            "/v1/organizations/users?limit=5&before_id={}",
            all_ids[5]
        ))
        .await;
    assert_eq!(ids(p.body["data"].as_array().expect("data")), all_ids[0..5]);
    assert_eq!(p.body["has_more"], false);
    let p = sim
        .get(&format!("/v1/organizations/users?before_id={}", all_ids[0]))
        .await;
    assert_eq!(p.body["data"], json!([]));
    assert_eq!(p.body["first_id"], Value::Null);
    assert_eq!(p.body["last_id"], Value::Null);
    assert_eq!(p.body["has_more"], false);

    // Walking backwards from the end, as the SDK does, sees everything too.
    let mut back: Vec<String> = Vec::new();
    let mut cursor = all_ids[39].clone();
    back.push(cursor.clone());
    loop {
        let p = sim
            .get(&format!(
                "/v1/organizations/users?limit=6&before_id={cursor}"
            ))
            .await;
        let mut page = ids(p.body["data"].as_array().expect("data"));
        page.extend(back);
        back = page;
        if p.body["has_more"] == false {
            break;
        }
        cursor = p.body["first_id"].as_str().expect("first_id").to_string();
    }
    assert_eq!(back, all_ids);

    // The last page after a cursor.
    let p = sim
        .get(&format!(
            "/v1/organizations/users?limit=5&after_id={}",
            all_ids[37]
        ))
        .await;
    assert_eq!(ids(p.body["data"].as_array().expect("data")), all_ids[38..]);
    assert_eq!(p.body["has_more"], false);

    // Invalid paging.
    for q in [
        "limit=0".to_string(),
        "limit=1001".to_string(),
        "limit=ten".to_string(),
        "after_id=user_01NoSuchUserAnywhere00000".to_string(),
        "before_id=apikey_01NotAUserAtAll000000".to_string(),
        format!("after_id={}&before_id={}", all_ids[1], all_ids[3]),
    ] {
        let a = sim.get(&format!("/v1/organizations/users?{q}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(a.error_type(), "invalid_request_error", "{q}");
    }
    assert_eq!(
        sim.get("/v1/organizations/users?limit=1000").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn pages_are_stable_when_items_are_deleted_or_added_between_them() {
    let sim = Sim::small().await;
    let truth = sim.h.snapshot_state().users();
    let removable: Vec<String> = truth
        .iter()
        .filter(|u| u["role"] != "admin")
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect();
    let all_ids = ids(&truth);

    let p1 = sim.get("/v1/organizations/users?limit=10").await;
    let page1 = ids(p1.body["data"].as_array().expect("data"));
    let cursor = p1.body["last_id"].as_str().expect("last_id").to_string();

    // Delete the cursor itself (through the Console helper, whatever its role), a user on the
    // next page (through the API), and add a new member at the end.
    sim.h.with_state(|s| assert!(s.remove_user(&cursor)));
    let victim = removable
        .iter()
        .find(|id| {
            all_ids
                .iter()
                .position(|x| x == *id)
                .is_some_and(|i| i > 12)
        })
        .expect("a removable user after the first page")
        .clone();
    let del = sim
        .delete(&format!("/v1/organizations/users/{victim}"))
        .await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.body);
    assert_eq!(del.body, json!({"id": victim, "type": "user_deleted"}));
    let newcomer = sim
        .h
        .with_state(|s| s.add_user("late.joiner@example.com", "Late Joiner", "user", t0()));

    let mut rest = Vec::new();
    let mut after = cursor.clone();
    loop {
        let p = sim
            .get(&format!(
                "/v1/organizations/users?limit=10&after_id={after}"
            ))
            .await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        rest.extend(ids(p.body["data"].as_array().expect("data")));
        if p.body["has_more"] == false {
            break;
        }
        after = p.body["last_id"].as_str().expect("last_id").to_string();
    }
    let mut expected: Vec<String> = all_ids[10..]
        .iter()
        .filter(|id| **id != victim)
        .cloned()
        .collect();
    expected.push(newcomer);
    assert_eq!(rest, expected);
    assert!(page1.iter().all(|id| !rest.contains(id)), "no repeats");
}

// ---- Filters ----

#[tokio::test]
async fn list_filters() {
    let sim = Sim::small().await;
    let state = sim.h.snapshot_state();

    // Users: email is case-insensitive; roles accept brackets and repeats.
    let users = state.users();
    let someone = users[5]["email"].as_str().expect("email");
    let shouted = someone.to_uppercase();
    let found = sim
        .get(&format!(
            "/v1/organizations/users?email={}",
            urlencode(&shouted)
        ))
        .await;
    assert_eq!(found.body["data"].as_array().expect("data").len(), 1);
    assert_eq!(found.body["data"][0]["email"], someone);
    let devs_and_billing = |u: &&Value| u["role"] == "developer" || u["role"] == "billing";
    let expected: Vec<&Value> = users.iter().filter(devs_and_billing).collect();
    for q in [
        "roles[]=developer&roles[]=billing",
        "roles=developer&roles=billing",
        "roles%5B%5D=developer&roles=billing",
    ] {
        let got = sim.walk(&format!("/v1/organizations/users?{q}"), 3).await;
        assert_eq!(got.iter().collect::<Vec<_>>(), expected, "{q}");
    }
    let bad = sim.get("/v1/organizations/users?roles[]=wizard").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Invites: default statuses, explicit statuses, no deleted ones.
    let invites = state.invites();
    let pending_id = invites
        .iter()
        .find(|i| i["status"] == "pending")
        .and_then(|i| i["id"].as_str())
        .expect("a pending invite")
        .to_string();
    let del = sim
        .delete(&format!("/v1/organizations/invites/{pending_id}"))
        .await;
    assert_eq!(
        del.body,
        json!({"id": pending_id, "type": "invite_deleted"})
    );
    let listed = sim.walk("/v1/organizations/invites", 5).await;
    assert_eq!(listed.len(), invites.len() - 1);
    assert!(!ids(&listed).contains(&pending_id));
    let expired = sim
        .walk("/v1/organizations/invites?statuses[]=expired", 5)
        .await;
    assert!(!expired.is_empty());
    assert!(expired.iter().all(|i| i["status"] == "expired"));
    let two = sim
        .walk(
            "/v1/organizations/invites?statuses[]=expired&statuses[]=accepted",
            5,
        )
        .await;
    assert_eq!(
        two.len(),
        listed.iter().filter(|i| i["status"] != "pending").count()
    );
    assert_eq!(
        sim.get("/v1/organizations/invites?statuses[]=deleted")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let by_email = sim
        .get(&format!(
            "/v1/organizations/invites?email={}",
            urlencode(&listed[0]["email"].as_str().expect("email").to_uppercase())
        ))
        .await;
    assert_eq!(by_email.body["data"][0]["id"], listed[0]["id"]);

    // Workspaces: archived and default are hidden unless asked for.
    let active = sim.walk("/v1/organizations/workspaces", 2).await;
    let with_archived = sim
        .walk("/v1/organizations/workspaces?include_archived=true", 2)
        .await;
    let with_default = sim
        .walk(
            "/v1/organizations/workspaces?include_archived=true&include_default=true",
            2,
        )
        .await;
    assert!(active.iter().all(|w| w["archived_at"].is_null()));
    assert!(
        with_archived.len() > active.len(),
        "the seed archives some workspaces"
    );
    assert_eq!(with_archived.len(), 5);
    assert_eq!(with_default.len(), 6);
    assert_eq!(with_default[0]["id"], state.default_workspace_id());
    assert_eq!(with_default[0]["name"], "Default Workspace");
    let default = sim
        .get(&format!(
            "/v1/organizations/workspaces/{}",
            state.default_workspace_id()
        ))
        .await;
    assert_eq!(default.body, state.default_workspace());

    // API keys: status, workspace_id (the Default Workspace's id included), created_by_user_id.
    let keys = state.api_keys();
    for status in ["active", "inactive", "archived"] {
        let got = sim
            .walk(&format!("/v1/organizations/api_keys?status={status}"), 7)
            .await;
        let want: Vec<Value> = keys
            .iter()
            .filter(|k| k["status"] == status)
            .cloned()
            .collect();
        assert_eq!(got, want, "{status}");
    }
    assert_eq!(
        sim.get("/v1/organizations/api_keys?status=revoked")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let ws = with_archived[0]["id"].as_str().expect("id");
    let in_ws = sim
        .walk(&format!("/v1/organizations/api_keys?workspace_id={ws}"), 7)
        .await;
    assert_eq!(
        in_ws,
        keys.iter()
            .filter(|k| k["workspace_id"] == ws)
            .cloned()
            .collect::<Vec<_>>()
    );
    let in_default = sim
        .walk(
            &format!(
                "/v1/organizations/api_keys?workspace_id={}",
                state.default_workspace_id()
            ),
            7,
        )
        .await;
    assert!(!in_default.is_empty());
    assert!(in_default.iter().all(|k| k["workspace_id"].is_null()
        && k["scope"]["workspace_id"] == state.default_workspace_id()));
    let creator = keys
        .iter()
        .find_map(|k| (k["created_by"]["type"] == "user").then(|| k["created_by"]["id"].clone()))
        .expect("a key created by a user");
    let by_creator = sim
        .walk(
            &format!(
                "/v1/organizations/api_keys?created_by_user_id={}",
                creator.as_str().expect("id")
            ),
            7,
        )
        .await;
    assert_eq!(
        by_creator,
        keys.iter()
            .filter(|k| k["created_by"]["id"] == creator)
            .cloned()
            .collect::<Vec<_>>()
    );
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---- Business rules ----

#[tokio::test]
async fn user_and_invite_rules() {
    let sim = Sim::small().await;
    let state = sim.h.snapshot_state();
    let users = state.users();
    let admin = users
        .iter()
        .find(|u| u["role"] == "admin")
        .and_then(|u| u["id"].as_str())
        .expect("an admin")
        .to_string();
    let plain = users
        .iter()
        .find(|u| u["role"] == "user")
        .and_then(|u| u["id"].as_str())
        .expect("a user")
        .to_string();

    // Roles: admin and owners cannot be assigned; the assignable ones can.
    for role in ["admin", "owner", "primary_owner", "wizard"] {
        let a = sim
            .post(
                &format!("/v1/organizations/users/{plain}"),
                json!({"role": role}),
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{role}");
        assert_eq!(a.error_type(), "invalid_request_error");
        let a = sim
            .post(
                "/v1/organizations/invites",
                json!({"email":"x.y@example.com","role": role}),
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{role}");
    }
    for role in [
        "developer",
        "billing",
        "claude_code_user",
        "managed",
        "user",
    ] {
        let a = sim
            .post(
                &format!("/v1/organizations/users/{plain}"),
                json!({"role": role}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{role}: {}", a.body);
        assert_eq!(a.body["role"], role);
    }
    // Unknown body fields, missing fields and bad JSON are 400s.
    for body in [
        json!({"role":"user","extra":1}),
        json!({}),
        json!({"role": 5}),
    ] {
        let a = sim
            .post(&format!("/v1/organizations/users/{plain}"), body.clone())
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let raw = sim
        .send(
            sim.c
                .post(sim.url(&format!("/v1/organizations/users/{plain}")))
                .body("{not json"),
        )
        .await;
    assert_eq!(raw.status, StatusCode::BAD_REQUEST);
    assert_eq!(raw.error_type(), "invalid_request_error");

    // Admins can be neither changed nor removed.
    let a = sim
        .post(
            &format!("/v1/organizations/users/{admin}"),
            json!({"role":"user"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = sim
        .delete(&format!("/v1/organizations/users/{admin}"))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    sim.h
        .with_state(|s| assert!(s.set_user_role(&plain, "primary_owner")));
    let a = sim
        .delete(&format!("/v1/organizations/users/{plain}"))
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "owners count as admins");
    sim.h
        .with_state(|s| assert!(s.set_user_role(&plain, "user")));

    // Unknown ids are 404s.
    for path in [
        "/v1/organizations/users/user_01DoesNotExist0000000000",
        "/v1/organizations/invites/invite_01DoesNotExist000000000",
        "/v1/organizations/workspaces/wrkspc_01DoesNotExist000000000",
        "/v1/organizations/api_keys/apikey_01DoesNotExist000000000",
    ] {
        let a = sim.get(path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(a.error_type(), "not_found_error");
    }
    let a = sim
        .delete("/v1/organizations/users/user_01DoesNotExist0000000000")
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Creating an invite.
    let a = sim
        .post(
            "/v1/organizations/invites",
            json!({"email":"new.person@example.com","role":"developer"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["status"], "pending");
    assert_eq!(a.body["invited_at"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(a.body["expires_at"], "2026-01-22T00:00:00.000000Z");
    assert_eq!(a.body["accepted_at"], Value::Null);
    assert_eq!(a.body["rbac_group_ids"], json!([]));
    let created = a.body["id"].as_str().expect("id").to_string();
    assert_eq!(
        sim.get(&format!("/v1/organizations/invites/{created}"))
            .await
            .body,
        a.body
    );
    for body in [
        json!({"email":"NEW.person@example.com","role":"user"}),
        json!({"email": users[3]["email"], "role":"user"}),
        json!({"email":"not-an-email","role":"user"}),
        json!({"email":"a@example.com","role":"user","bogus":true}),
        json!({"email":"a@example.com"}),
    ] {
        let a = sim.post("/v1/organizations/invites", body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
    }

    // Only pending invites can be deleted; a deleted invite is gone.
    let invites = sim.walk("/v1/organizations/invites", 50).await;
    for status in ["accepted", "expired"] {
        let id = invites
            .iter()
            .find(|i| i["status"] == status)
            .and_then(|i| i["id"].as_str())
            .expect("seeded");
        let a = sim.delete(&format!("/v1/organizations/invites/{id}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{status}");
    }
    let a = sim
        .delete(&format!("/v1/organizations/invites/{created}"))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        sim.get(&format!("/v1/organizations/invites/{created}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        sim.delete(&format!("/v1/organizations/invites/{created}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn invites_expire_exactly_at_expires_at() {
    let sim = Sim::small().await;
    let invited = t0() - chrono::Duration::days(3);
    let id = sim
        .h
        .with_state(|s| s.add_invite("soon.expired@example.com", "user", invited));
    let path = format!("/v1/organizations/invites/{id}");
    let expires = invited + chrono::Duration::days(21);

    sim.h.set_now(expires - chrono::Duration::microseconds(1));
    assert_eq!(sim.get(&path).await.body["status"], "pending");
    let pending = sim
        .walk("/v1/organizations/invites?statuses[]=pending", 100)
        .await;
    assert!(ids(&pending).contains(&id));

    sim.h.set_now(expires);
    let a = sim.get(&path).await;
    assert_eq!(a.body["status"], "expired");
    assert_eq!(a.body["expires_at"], "2026-01-19T00:00:00.000000Z");
    let pending = sim
        .walk("/v1/organizations/invites?statuses[]=pending", 100)
        .await;
    assert!(!ids(&pending).contains(&id));
    let d = sim.delete(&path).await;
    assert_eq!(
        d.status,
        StatusCode::BAD_REQUEST,
        "an expired invite is not pending"
    );

    sim.h.advance(chrono::Duration::days(-1));
    assert_eq!(sim.get(&path).await.body["status"], "pending");
    assert_eq!(sim.h.now(), expires - chrono::Duration::days(1));
}

#[tokio::test]
async fn workspace_rules_and_archive_cascade() {
    let sim = Sim::small().await;

    // Creation and validation.
    let a = sim
        .post(
            "/v1/organizations/workspaces",
            json!({"name": "x".repeat(40)}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["archived_at"], Value::Null);
    assert_eq!(
        a.body["data_residency"],
        json!({"workspace_geo":"us","allowed_inference_geos":"unrestricted","default_inference_geo":"global"})
    );
    assert_eq!(a.body["external_key_id"], Value::Null);
    assert_eq!(a.body["tags"], json!({}));
    assert!(a.body["display_color"]
        .as_str()
        .expect("colour")
        .starts_with('#'));
    for body in [
        json!({"name": "x".repeat(41)}),
        json!({"name": ""}),
        json!({}),
        json!({"name": "ok", "display_color": "red"}),
        json!({"name": "ok", "tags": {"anthropic_team": "x"}}),
        json!({"name": "ok", "data_residency": {"allowed_inference_geos": ["us"], "default_inference_geo": "global"}}),
        json!({"name": "ok", "unknown": 1}),
    ] {
        let r = sim.post("/v1/organizations/workspaces", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.error_type(), "invalid_request_error");
    }
    let ws = sim
        .post(
            "/v1/organizations/workspaces",
            json!({"name":"Prod EU","display_color":"#AABBCC","tags":{"env":"prod"},
                   "data_residency":{"allowed_inference_geos":["us"],"default_inference_geo":"us"}}),
        )
        .await;
    assert_eq!(ws.status, StatusCode::OK, "{}", ws.body);
    let ws_id = ws.body["id"].as_str().expect("id").to_string();
    let path = format!("/v1/organizations/workspaces/{ws_id}");

    // Partial update; null deletes a tag; external_key_id is write-once.
    let u = sim
        .post(
            &path,
            json!({"tags":{"env":null,"team":"ml"},"external_key_id":"ekey_1"}),
        )
        .await;
    assert_eq!(u.status, StatusCode::OK, "{}", u.body);
    assert_eq!(u.body["name"], "Prod EU");
    assert_eq!(u.body["tags"], json!({"team":"ml"}));
    assert_eq!(
        sim.post(&path, json!({"external_key_id":"ekey_2"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.post(&path, json!({"data_residency":{"workspace_geo":"eu"}}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let u = sim.post(&path, json!({"name":"Prod US"})).await;
    assert_eq!(u.body["name"], "Prod US");

    // Keys in it, a member, then archive.
    let (k1, k2, member) = sim.h.with_state(|s| {
        let u = s
            .users()
            .into_iter()
            .find(|u| u["role"] == "developer")
            .and_then(|u| u["id"].as_str().map(str::to_string))
            .expect("a developer");
        let k1 = s.add_api_key("one", Some(&ws_id), Some(&u), "active", t0());
        let k2 = s.add_api_key("two", Some(&ws_id), Some(&u), "inactive", t0());
        (k1, k2, u)
    });
    let m = sim
        .post(
            &format!("{path}/members"),
            json!({"user_id": member, "workspace_role":"workspace_developer"}),
        )
        .await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.body);

    sim.h.set_now(t0() + chrono::Duration::hours(2));
    let arch = sim.post(&format!("{path}/archive"), json!({})).await;
    assert_eq!(arch.status, StatusCode::OK, "{}", arch.body);
    assert_eq!(arch.body["archived_at"], "2026-01-01T02:00:00.000000Z");
    for k in [&k1, &k2] {
        let key = sim.get(&format!("/v1/organizations/api_keys/{k}")).await;
        assert_eq!(key.body["status"], "archived");
        let leave = sim
            .post(
                &format!("/v1/organizations/api_keys/{k}"),
                json!({"status":"active"}),
            )
            .await;
        assert_eq!(
            leave.status,
            StatusCode::BAD_REQUEST,
            "archived is terminal"
        );
    }
    // Acting on an archived workspace.
    assert_eq!(
        sim.post(&path, json!({"name":"Renamed"})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.post(&format!("{path}/archive"), json!({})).await.status,
        StatusCode::BAD_REQUEST
    );
    let other = sim
        .h
        .snapshot_state()
        .users()
        .into_iter()
        .find(|u| u["role"] == "user")
        .expect("a user");
    let add = sim
        .post(
            &format!("{path}/members"),
            json!({"user_id": other["id"], "workspace_role":"workspace_user"}),
        )
        .await;
    assert_eq!(add.status, StatusCode::BAD_REQUEST);
    // Archived workspaces are listed only on request.
    let listed = sim.walk("/v1/organizations/workspaces", 100).await;
    assert!(!ids(&listed).contains(&ws_id));
    let listed = sim
        .walk("/v1/organizations/workspaces?include_archived=true", 100)
        .await;
    assert!(ids(&listed).contains(&ws_id));

    // The Default Workspace cannot be renamed or archived.
    let default = sim.h.snapshot_state().default_workspace_id().to_string();
    let dpath = format!("/v1/organizations/workspaces/{default}");
    assert_eq!(
        sim.post(&dpath, json!({"name":"Mine"})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        sim.post(&format!("{dpath}/archive"), json!({}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let members = sim.get(&format!("{dpath}/members")).await;
    assert_eq!(members.body["data"], json!([]));
    let add = sim
        .post(
            &format!("{dpath}/members"),
            json!({"user_id": other["id"], "workspace_role":"workspace_user"}),
        )
        .await;
    assert_eq!(add.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn workspace_member_rules() {
    let sim = Sim::small().await;
    let state = sim.h.snapshot_state();
    let ws = state
        .workspaces()
        .into_iter()
        .find(|w| w["archived_at"].is_null())
        .and_then(|w| w["id"].as_str().map(str::to_string))
        .expect("an active workspace");
    let path = format!("/v1/organizations/workspaces/{ws}/members");
    let users = state.users();
    let find = |role: &str| {
        users
            .iter()
            .filter(|u| u["role"] == role)
            .filter_map(|u| u["id"].as_str())
            .find(|id| {
                state
                    .workspace_members(&ws)
                    .iter()
                    .all(|m| m["user_id"] != *id)
            })
            .expect("a user with that role outside the workspace")
            .to_string()
    };
    let (admin, billing, dev) = (find("admin"), find("billing"), find("developer"));

    // workspace_billing is never assignable; unknown roles and users are refused.
    let a = sim
        .post(
            &path,
            json!({"user_id": dev, "workspace_role":"workspace_billing"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = sim
        .post(
            &path,
            json!({"user_id": dev, "workspace_role":"workspace_owner"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = sim
        .post(
            &path,
            json!({"user_id": "user_01DoesNotExist0000000000", "workspace_role":"workspace_user"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // Admins already are workspace admins everywhere.
    let a = sim
        .post(
            &path,
            json!({"user_id": admin, "workspace_role":"workspace_admin"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Billing members: only the upgrade to workspace_admin.
    let a = sim
        .post(
            &path,
            json!({"user_id": billing, "workspace_role":"workspace_developer"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = sim
        .post(
            &path,
            json!({"user_id": billing, "workspace_role":"workspace_admin"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = sim
        .post(
            &format!("{path}/{billing}"),
            json!({"workspace_role":"workspace_user"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        sim.delete(&format!("{path}/{billing}")).await.status,
        StatusCode::BAD_REQUEST
    );

    // A developer: add, read, change, remove; keys stay.
    let key = sim
        .h
        .with_state(|s| s.add_api_key("dev key", Some(&ws), Some(&dev), "active", t0()));
    let a = sim
        .post(
            &path,
            json!({"user_id": dev, "workspace_role":"workspace_restricted_developer"}),
        )
        .await;
    assert_eq!(
        a.body,
        json!({"type":"workspace_member","user_id":dev,"workspace_id":ws,
               "workspace_role":"workspace_restricted_developer"})
    );
    let again = sim
        .post(
            &path,
            json!({"user_id": dev, "workspace_role":"workspace_user"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "already a member");
    let a = sim
        .post(
            &format!("{path}/{dev}"),
            json!({"workspace_role":"workspace_admin"}),
        )
        .await;
    assert_eq!(a.body["workspace_role"], "workspace_admin");
    assert_eq!(
        sim.post(
            &format!("{path}/{dev}"),
            json!({"workspace_role":"workspace_billing"})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(sim.get(&format!("{path}/{dev}")).await.body, a.body);
    let listed = sim.walk(&path, 2).await;
    assert_eq!(listed, sim.h.snapshot_state().workspace_members(&ws));
    assert_eq!(
        listed.last().expect("listed"),
        &a.body,
        "new members come last"
    );
    let d = sim.delete(&format!("{path}/{dev}")).await;
    assert_eq!(
        d.body,
        json!({"type":"workspace_member_deleted","user_id":dev,"workspace_id":ws})
    );
    assert_eq!(
        sim.get(&format!("{path}/{dev}")).await.status,
        StatusCode::NOT_FOUND
    );
    let k = sim.get(&format!("/v1/organizations/api_keys/{key}")).await;
    assert_eq!(
        k.body["status"], "active",
        "removing a member leaves keys alone"
    );
    assert_eq!(k.body["workspace_id"], ws.as_str());

    // Member list cursors use the user id.
    let first = sim.get(&format!("{path}?limit=1")).await;
    let cursor = first.body["last_id"].as_str().expect("cursor");
    assert_eq!(first.body["data"][0]["user_id"], cursor);
    let next = sim.get(&format!("{path}?limit=1&after_id={cursor}")).await;
    assert_eq!(next.status, StatusCode::OK);
    let bad = sim
        .get(&format!("{path}?after_id=user_01NotAMember000000000000"))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unknown_ws = sim
        .get("/v1/organizations/workspaces/wrkspc_01DoesNotExist000000000/members")
        .await;
    assert_eq!(unknown_ws.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_key_updates() {
    let sim = Sim::small().await;
    let id = sim.h.with_state(|s| {
        let ws = s.add_workspace("Keys");
        s.add_api_key("k", Some(&ws), None, "active", t0())
    });
    let path = format!("/v1/organizations/api_keys/{id}");
    for body in [
        json!({"name": ""}),
        json!({"name": "n".repeat(501)}),
        json!({"status": "expired"}),
        json!({"status": "deleted"}),
        json!({"name": "ok", "workspace_id": "x"}),
    ] {
        let a = sim.post(&path, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let a = sim.post(&path, json!({"name": "n".repeat(500)})).await;
    assert_eq!(a.status, StatusCode::OK);
    let a = sim
        .post(&path, json!({"status": "inactive", "name": "renamed"}))
        .await;
    assert_eq!(
        (a.body["status"].as_str(), a.body["name"].as_str()),
        (Some("inactive"), Some("renamed"))
    );
    let a = sim
        .post(&path, json!({"status": "active", "name": null}))
        .await;
    assert_eq!(
        (a.body["status"].as_str(), a.body["name"].as_str()),
        (Some("active"), Some("renamed"))
    );
    let a = sim.post(&path, json!({})).await;
    assert_eq!(a.status, StatusCode::OK, "an empty update changes nothing");

    // An expiring key reads as expired from expires_at on, and can then only be archived.
    sim.h
        .with_state(|s| s.set_key_expiry(&id, Some(t0() + chrono::Duration::days(1))));
    assert_eq!(sim.get(&path).await.body["status"], "active");
    sim.h.advance(chrono::Duration::days(1));
    assert_eq!(sim.get(&path).await.body["status"], "expired");
    let expired = sim
        .walk("/v1/organizations/api_keys?status=expired", 100)
        .await;
    assert!(ids(&expired).contains(&id));
    assert_eq!(
        sim.post(&path, json!({"status":"active"})).await.status,
        StatusCode::BAD_REQUEST
    );
    let a = sim.post(&path, json!({"status":"archived"})).await;
    assert_eq!(a.body["status"], "archived");
    assert_eq!(
        sim.post(&path, json!({"status":"inactive"})).await.status,
        StatusCode::BAD_REQUEST
    );
    // Renaming an archived key is allowed.
    assert_eq!(
        sim.post(&path, json!({"name":"old"})).await.status,
        StatusCode::OK
    );
}

// ---- Rate limit and faults ----

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let sim = Sim::start(SimOptions {
        now: Some(t0()),
        rps: Some(1),
        ..SimOptions::default()
    })
    .await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let a = sim.get("/v1/organizations/me").await;
        statuses.push(a.status.as_u16());
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(a);
        }
    }
    assert_eq!(statuses[0], 200);
    let limited = limited.expect("a budget of 1 per second runs out");
    assert_eq!(limited.error_type(), "rate_limit_error");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("integer seconds");
    assert!(retry >= 1);
    sim.h.set_rps(None);
    for _ in 0..20 {
        assert_eq!(sim.get("/v1/organizations/me").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn injected_errors_drops_and_malformed_bodies() {
    let sim = Sim::small().await;
    let url = sim.url("/v1/organizations/users");

    sim.h.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let mut kinds = HashSet::new();
    for _ in 0..30 {
        let a = sim.get("/v1/organizations/users").await;
        let kind = a.error_type().to_string();
        match a.status.as_u16() {
            500 => assert_eq!(kind, "api_error"),
            529 => assert_eq!(kind, "overloaded_error"),
            other => panic!("unexpected status {other}"),
        }
        kinds.insert(kind);
    }
    assert_eq!(kinds.len(), 2, "both 500 and 529 occur");

    sim.h.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..3 {
        let result = sim
            .c
            .get(&url)
            .header("x-api-key", DEMO_ADMIN_KEY)
            .send()
            .await;
        match result {
            Err(_) => {}
            Ok(resp) => assert!(resp.bytes().await.is_err(), "the body must fail"),
        }
    }

    sim.h.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    for _ in 0..6 {
        let resp = sim
            .c
            .get(&url)
            .header("x-api-key", DEMO_ADMIN_KEY)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().contains_key("request-id"));
        let text = resp.text().await.expect("the body itself arrives whole");
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    }
    // Errors are not made malformed: their bodies stay valid.
    let a = sim
        .get("/v1/organizations/users/user_01DoesNotExist0000000000")
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    sim.h.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(sim.get("/v1/organizations/me").await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));

    sim.h.set_faults(Faults::default());
    assert_eq!(
        sim.get("/v1/organizations/users").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn empty_members_and_targeted_faults() {
    let sim = Sim::small().await;
    sim.h.set_faults(Faults {
        empty_members: true,
        ..Faults::default()
    });
    let a = sim.get("/v1/organizations/users").await;
    assert_eq!(
        a.body,
        json!({"data":[],"has_more":false,"first_id":null,"last_id":null})
    );
    // Other lists are untouched.
    let keys = sim.get("/v1/organizations/api_keys").await;
    assert_eq!(keys.body["data"].as_array().expect("data").len(), 20);

    // Fail exactly the fifth page of /users, and nothing else.
    sim.h.set_faults(Faults {
        error_rate: 1.0,
        path_contains: Some("/users".into()),
        after_requests: 4,
        ..Faults::default()
    });
    let mut after: Option<String> = None;
    for page in 1..=5 {
        assert_eq!(sim.get("/v1/organizations/me").await.status, StatusCode::OK);
        let mut path = "/v1/organizations/users?limit=5".to_string();
        if let Some(a) = &after {
            path.push_str(&format!("&after_id={a}"));
        }
        let a = sim.get(&path).await;
        if page < 5 {
            assert_eq!(a.status, StatusCode::OK, "page {page}");
            after = a.body["last_id"].as_str().map(str::to_string);
        } else {
            assert!(a.status.is_server_error(), "page 5 fails");
        }
    }
}

#[tokio::test]
async fn fault_choice_is_reproducible_across_servers() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let sim = Sim::start(SimOptions {
            seed,
            now: Some(t0()),
            faults: Faults {
                error_rate: 0.5,
                ..Faults::default()
            },
            ..SimOptions::default()
        })
        .await;
        let mut out = Vec::new();
        for _ in 0..40 {
            out.push(sim.get("/v1/organizations/me").await.status.as_u16());
        }
        sim.h.shutdown();
        out
    }
    let a = statuses(5).await;
    assert_eq!(a, statuses(5).await);
    assert_ne!(a, statuses(6).await);
    assert!(a.contains(&200) && a.iter().any(|s| *s >= 500));
}

// ---- Lifecycle and scale ----

#[tokio::test]
async fn loads_a_saved_state_and_shuts_down() {
    let saved = SimState::seeded(9, SeedSizes::default(), t0()).to_json();
    let state = SimState::from_json(&saved).expect("loads");
    let sim = Sim::start(SimOptions {
        seed: 1,
        now: Some(t0()),
        state: Some(state.clone()),
        ..SimOptions::default()
    })
    .await;
    let users = sim.walk("/v1/organizations/users", 1000).await;
    let mut expected = state;
    expected.set_clock(Some(t0()));
    assert_eq!(users, expected.users());
    assert_eq!(sim.h.snapshot_state().to_json(), saved);

    sim.h.shutdown();
    tokio::time::timeout(Duration::from_secs(10), sim.h.stopped())
        .await
        .expect("stops");
    let fresh = reqwest::Client::new();
    assert!(fresh
        .get(sim.url("/v1/organizations/me"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn a_large_organization_pages_quickly() {
    let sizes = SeedSizes {
        members: 2_000,
        invites: 500,
        workspaces: 100,
        keys: 50_000,
        workspace_members: 4_000,
    };
    let sim = Sim::start(SimOptions {
        sizes,
        now: Some(t0()),
        ..SimOptions::default()
    })
    .await;
    assert_eq!(sim.h.snapshot_state().counts(), sizes);
    let started = Instant::now();
    let keys = sim.walk("/v1/organizations/api_keys", 1000).await;
    let walk = started.elapsed();
    assert_eq!(keys.len(), 50_000);
    assert_eq!(ids(&keys).into_iter().collect::<HashSet<_>>().len(), 50_000);
    // A page deep in the list costs the same as the first.
    let deep = keys[45_000]["id"].as_str().expect("id").to_string();
    let started = Instant::now();
    for _ in 0..20 {
        let a = sim
            .get(&format!(
                "/v1/organizations/api_keys?limit=5&before_id={deep}"
            ))
            .await;
        assert_eq!(a.body["data"][4]["id"], keys[44_999]["id"]);
    }
    let deep_pages = started.elapsed();
    // Generous bounds: these catch a linear scan per page, not a slow machine.
    assert!(walk < Duration::from_secs(60), "walk took {walk:?}");
    assert!(
        deep_pages < Duration::from_secs(10),
        "20 deep pages took {deep_pages:?}"
    );
}
