//! The usage reports (§7.1, §7.3) over TCP: buckets, limits, pages, grouping, filters, the clock
//! and determinism.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

const MP: &str = "/v1/organizations/usage_report/messages";
const CP: &str = "/v1/organizations/usage_report/claude_code";

/// 12:30 on 2026-01-10: the current day is half over.
fn noon() -> DateTime<Utc> {
    parse_ts("2026-01-10T12:30:00Z").expect("valid test time")
}

async fn at_noon(seed: u64) -> Sim {
    Sim::start(SimOptions {
        seed,
        now: Some(noon()),
        ..SimOptions::default()
    })
    .await
}

/// Every bucket of a messages query, following `next_page`; checks each page's size.
async fn buckets(sim: &Sim, query: &str, page_size: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut page: Option<String> = None;
    for _ in 0..100 {
        let mut url = format!("{MP}?{query}");
        if let Some(p) = &page {
            url.push_str(&format!("&page={p}"));
        }
        let a = sim.get(&url).await;
        assert_eq!(a.status, StatusCode::OK, "{url}: {}", a.body);
        let data = a.body["data"].as_array().expect("data").clone();
        assert!(data.len() <= page_size, "{url}: {} buckets", data.len());
        out.extend(data);
        if !a.body["has_more"].as_bool().expect("has_more") {
            assert!(a.body["next_page"].is_null());
            return out;
        }
        assert_eq!(data_len(&a), page_size, "a page before the last is full");
        page = Some(a.body["next_page"].as_str().expect("next_page").to_string());
    }
    panic!("more than 100 pages");
}

fn data_len(a: &Answer) -> usize {
    a.body["data"].as_array().map_or(0, Vec::len)
}

fn tokens(item: &Value) -> u64 {
    item["uncached_input_tokens"].as_u64().expect("tokens")
}

fn total(buckets: &[Value]) -> u64 {
    buckets
        .iter()
        .flat_map(|b| b["results"].as_array().expect("results").iter())
        .map(tokens)
        .sum()
}

/// Usage per key over the buckets of a query grouped by `api_key_id`.
fn per_key(buckets: &[Value]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for b in buckets {
        for it in b["results"].as_array().expect("results") {
            let id = it["api_key_id"]
                .as_str()
                .expect("grouped by key")
                .to_string();
            *out.entry(id).or_default() += tokens(it);
        }
    }
    out
}

#[tokio::test]
async fn messages_buckets_pages_and_the_clock() {
    let sim = at_noon(42).await;
    // Snapped to the day, oldest first, contiguous, empty buckets included, the current day last.
    let all = buckets(&sim, "starting_at=2025-12-01T05:17:00Z&limit=7", 7).await;
    assert_eq!(all.len(), 41, "2025-12-01 up to and including 2026-01-10");
    assert_eq!(all[0]["starting_at"], "2025-12-01T00:00:00.000000Z");
    assert_eq!(all[40]["ending_at"], "2026-01-11T00:00:00.000000Z");
    for pair in all.windows(2) {
        assert_eq!(pair[0]["ending_at"], pair[1]["starting_at"]);
    }
    for b in &all {
        let results = b["results"].as_array().expect("results");
        assert!(results.len() <= 1, "not grouped: one total at most");
        for it in results {
            for k in [
                "api_key_id",
                "workspace_id",
                "account_id",
                "model",
                "service_tier",
            ] {
                assert!(it[k].is_null(), "{k} not grouped but {}", it[k]);
            }
        }
    }
    assert!(total(&all) > 0, "the seeded organization has usage");
    // Default page sizes per width.
    for (width, default) in [("1d", 7), ("1h", 24), ("1m", 60)] {
        let a = sim
            .get(&format!(
                "{MP}?starting_at=2025-12-20T00:00:00Z&bucket_width={width}"
            ))
            .await;
        assert_eq!(data_len(&a), default, "{width}");
        assert_eq!(a.body["has_more"], true);
    }
    // The current day is partial and agrees with its hours, and the current hour with its minutes.
    let today = &all[40];
    let hours = buckets(
        &sim,
        "starting_at=2026-01-10T00:00:00Z&bucket_width=1h&limit=5",
        5,
    )
    .await;
    assert_eq!(hours.len(), 13, "00:00 to the partial 12:00 bucket");
    assert_eq!(total(std::slice::from_ref(today)), total(&hours));
    let minutes = buckets(
        &sim,
        "starting_at=2026-01-10T12:00:00Z&bucket_width=1m&limit=60",
        60,
    )
    .await;
    assert_eq!(minutes.len(), 31, "12:00 to the partial 12:30 bucket");
    assert_eq!(total(&minutes), total(&hours[12..]));
    // ending_at: only buckets that end by it.
    let three = buckets(
        &sim,
        "starting_at=2026-01-07T00:00:00Z&ending_at=2026-01-10T00:00:00Z",
        7,
    )
    .await;
    assert_eq!(three.len(), 3);
    assert_eq!(total(&three), total(&all[37..40]));
    // Time moves on: the finished days stay as they were, the current day grows, tomorrow appears.
    sim.h
        .set_now(parse_ts("2026-01-11T06:00:00Z").expect("valid"));
    let later = buckets(&sim, "starting_at=2025-12-01T00:00:00Z&limit=31", 31).await;
    assert_eq!(later.len(), 42);
    assert_eq!(later[..40], all[..40]);
    assert!(total(&later[40..41]) >= total(&all[40..41]));
    // A start in the future has no buckets.
    let future = sim
        .get(&format!("{MP}?starting_at=2026-02-01T00:00:00Z"))
        .await;
    assert_eq!(future.status, StatusCode::OK);
    assert_eq!(data_len(&future), 0);
    assert_eq!(future.body["has_more"], false);
}

#[tokio::test]
async fn messages_bad_parameters_are_400s() {
    let sim = at_noon(42).await;
    let s = "starting_at=2026-01-01T00:00:00Z";
    for (what, query) in [
        ("no starting_at", "bucket_width=1d".to_string()),
        ("not a date-time", "starting_at=yesterday".to_string()),
        ("bad ending_at", format!("{s}&ending_at=soon")),
        (
            "ending_at before",
            format!("{s}&ending_at=2025-12-31T00:00:00Z"),
        ),
        ("width 2d", format!("{s}&bucket_width=2d")),
        ("1d limit 32", format!("{s}&limit=32")),
        ("1h limit 169", format!("{s}&bucket_width=1h&limit=169")),
        ("1m limit 1441", format!("{s}&bucket_width=1m&limit=1441")),
        ("limit 0", format!("{s}&limit=0")),
        ("limit text", format!("{s}&limit=ten")),
        ("group_by colour", format!("{s}&group_by[]=colour")),
        ("service tier", format!("{s}&service_tiers[]=gold")),
        ("context window", format!("{s}&context_window[]=2M")),
        ("geo", format!("{s}&inference_geos[]=mars")),
        ("speed", format!("{s}&speeds[]=warp")),
        ("page junk", format!("{s}&page=not-a-token")),
    ] {
        let a = sim.get(&format!("{MP}?{query}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", a.body);
        assert_eq!(a.error_type(), "invalid_request_error", "{what}");
    }
    for (query, n) in [
        (format!("{s}&limit=31"), 10),
        (format!("{s}&bucket_width=1h&limit=168"), 168),
        (format!("{s}&bucket_width=1m&limit=1440"), 1440),
    ] {
        let a = sim.get(&format!("{MP}?{query}")).await;
        assert_eq!(a.status, StatusCode::OK, "{query}: {}", a.body);
        assert_eq!(data_len(&a), n, "{query}");
    }
    // A token of an hourly query does not page a daily one, and a page token is not a 200 elsewhere.
    let hourly = sim.get(&format!("{MP}?{s}&bucket_width=1h&limit=2")).await;
    let token = hourly.body["next_page"].as_str().expect("token");
    let a = sim.get(&format!("{MP}?{s}&page={token}")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Wrong key: the usual 401.
    let resp = sim
        .c
        .get(sim.url(&format!("{MP}?{s}")))
        .header("x-api-key", "sk-ant-admin01-wrong")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn messages_group_by_key_filters_and_the_key_mix() {
    let sim = at_noon(42).await;
    let state = sim.h.snapshot_state();
    let q = "starting_at=2025-09-12T00:00:00Z&limit=31&group_by[]=api_key_id";
    let grouped = buckets(&sim, q, 31).await;
    assert_eq!(grouped.len(), 121);
    let flat = buckets(&sim, "starting_at=2025-09-12T00:00:00Z&limit=31", 31).await;
    assert_eq!(
        total(&grouped),
        total(&flat),
        "grouping splits the same usage"
    );
    for b in &grouped {
        let end = parse_ts(b["ending_at"].as_str().expect("ts")).expect("ts");
        let mut seen = BTreeSet::new();
        for it in b["results"].as_array().expect("results") {
            let id = it["api_key_id"].as_str().expect("key id");
            assert!(seen.insert(id), "{id} twice in one bucket");
            assert!(it["workspace_id"].is_null() && it["model"].is_null());
            let k = state.api_keys.get(id).expect("a key of the organization");
            assert!(k.created_at < end, "{id} used before it was created");
            if let Some(ws) = k
                .workspace_id
                .as_deref()
                .and_then(|w| state.workspaces.get(w))
            {
                if let Some(archived) = ws.archived_at {
                    let start = parse_ts(b["starting_at"].as_str().expect("ts")).expect("ts");
                    assert!(
                        start < archived,
                        "{id} used after its workspace was archived"
                    );
                }
            }
        }
    }
    // The mix: among active keys older than 120 days some are busy, some idle for the last 30
    // days (dormant) and some never used at all.
    let used = per_key(&grouped);
    let recent = per_key(&grouped[91..]);
    let ever = buckets(
        &sim,
        "starting_at=2023-01-01T00:00:00Z&limit=31&group_by[]=api_key_id",
        31,
    )
    .await;
    let ever = per_key(&ever);
    let old_active: Vec<&str> = state
        .api_keys
        .iter()
        .filter(|k| k.status == "active" && k.expires_at.is_none())
        .filter(|k| k.created_at < noon() - chrono::Duration::days(120))
        .map(|k| k.id.as_str())
        .collect();
    assert!(
        old_active.iter().any(|id| recent.contains_key(*id)),
        "busy keys"
    );
    assert!(
        old_active
            .iter()
            .any(|id| ever.contains_key(*id) && !recent.contains_key(*id)),
        "keys idle for the last 30 days"
    );
    assert!(
        old_active.iter().any(|id| !ever.contains_key(*id)),
        "never-used keys"
    );
    // Filter by one key: exactly its usage.
    let (key, sum) = used.iter().next().expect("some key was used");
    let one = buckets(&sim, &format!("{q}&api_key_ids[]={key}"), 31).await;
    assert_eq!(per_key(&one), BTreeMap::from([(key.clone(), *sum)]));
    // Filter by workspace: only keys of that workspace.
    let ws = state
        .api_keys
        .get(key)
        .and_then(|k| k.workspace_id.clone())
        .expect("workspace key");
    let in_ws = buckets(&sim, &format!("{q}&workspace_ids[]={ws}"), 31).await;
    for id in per_key(&in_ws).keys() {
        let k = state.api_keys.get(id).expect("key");
        assert_eq!(k.workspace_id.as_deref(), Some(ws.as_str()));
    }
    // Filter by model, grouped by model and service tier: only that model.
    let m = buckets(
        &sim,
        "starting_at=2026-01-01T00:00:00Z&group_by[]=model&group_by[]=service_tier&models[]=claude-haiku-4-5-20251001",
        7,
    )
    .await;
    let items: Vec<&Value> = m
        .iter()
        .flat_map(|b| b["results"].as_array().expect("r").iter())
        .collect();
    assert!(!items.is_empty());
    for it in items {
        assert_eq!(it["model"], "claude-haiku-4-5-20251001");
        assert!(it["service_tier"].is_string() && it["api_key_id"].is_null());
    }
}

#[tokio::test]
async fn usage_is_deterministic_per_seed() {
    let (a, b, c) = (at_noon(42).await, at_noon(42).await, at_noon(7).await);
    let q = format!(
        "{MP}?starting_at=2025-12-20T00:00:00Z&limit=20&group_by[]=api_key_id&group_by[]=model"
    );
    let (ra, rb, rc) = (
        a.get(&q).await.body,
        b.get(&q).await.body,
        c.get(&q).await.body,
    );
    assert_eq!(ra, rb);
    assert_ne!(ra, rc);
    let cq = format!("{CP}?starting_at=2026-01-05&limit=1000");
    assert_eq!(a.get(&cq).await.body, b.get(&cq).await.body);
}

#[tokio::test]
async fn claude_code_one_day_pages() {
    let sim = at_noon(42).await;
    let state = sim.h.snapshot_state();
    let whole = sim
        .get(&format!("{CP}?starting_at=2026-01-08&limit=1000"))
        .await;
    assert_eq!(whole.status, StatusCode::OK);
    let whole = whole.body["data"].as_array().expect("data").clone();
    assert!(
        whole.len() > 3,
        "some Claude Code activity: {}",
        whole.len()
    );
    // Pages of two give the same items, in the same order, without repeats.
    let mut paged = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let mut url = format!("{CP}?starting_at=2026-01-08&limit=2");
        if let Some(p) = &page {
            url.push_str(&format!("&page={p}"));
        }
        let a = sim.get(&url).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(data_len(&a) <= 2);
        paged.extend(a.body["data"].as_array().expect("data").clone());
        if a.body["has_more"] == false {
            break;
        }
        page = Some(a.body["next_page"].as_str().expect("token").to_string());
    }
    assert_eq!(paged, whole);
    let actors: BTreeSet<String> = whole.iter().map(|it| it["actor"].to_string()).collect();
    assert_eq!(actors.len(), whole.len(), "one item per actor");
    for it in &whole {
        assert_eq!(it["date"], "2026-01-08T00:00:00.000000Z");
        assert_eq!(it["organization_id"], state.organization.id.as_str());
        assert!(it["core_metrics"]["num_sessions"].as_u64().expect("n") >= 1);
    }
    // Over a month: members active in Claude Code and members who never were.
    let mut active = BTreeSet::new();
    for d in 1..=31 {
        let a = sim
            .get(&format!("{CP}?starting_at=2025-12-{d:02}&limit=1000"))
            .await;
        for it in a.body["data"].as_array().expect("data") {
            if let Some(e) = it["actor"]["email_address"].as_str() {
                active.insert(e.to_string());
            }
        }
    }
    let members: Vec<&str> = state.users.iter().map(|u| u.email.as_str()).collect();
    assert!(members.iter().any(|e| active.contains(*e)));
    assert!(members.iter().any(|e| !active.contains(*e)));
    // No activity in the future; today only what happened before now.
    let tomorrow = sim.get(&format!("{CP}?starting_at=2026-01-11")).await;
    assert_eq!(data_len(&tomorrow), 0);
    // Bad parameters.
    for (what, query) in [
        ("no starting_at", "limit=5"),
        ("date-time", "starting_at=2026-01-08T00:00:00Z"),
        ("month 13", "starting_at=2025-13-01"),
        ("limit 0", "starting_at=2026-01-08&limit=0"),
        ("limit 1001", "starting_at=2026-01-08&limit=1001"),
        ("page junk", "starting_at=2026-01-08&page=page_zz"),
    ] {
        let a = sim.get(&format!("{CP}?{query}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", a.body);
        assert_eq!(a.error_type(), "invalid_request_error");
    }
}
