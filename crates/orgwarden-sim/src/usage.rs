//! The two usage reports (§7.1 and §7.3): `GET /v1/organizations/usage_report/messages` and
//! `GET /v1/organizations/usage_report/claude_code`.
//!
//! Nothing is stored: usage is a pure function of the seed, the organization and the clock, worked
//! out when a page is asked for, so a 50 000-key organization costs no memory and every page is
//! the same on every run. For each key a profile comes from a hash of the seed and the key id:
//! about 12% of keys are never used, about 28% were used for a few weeks or months after their
//! creation and then stopped, the rest are light or busy users. A key is used on a day when a
//! hash of (seed, key, day) says so, and then in some hours of that day, each used hour being one
//! burst of requests at one minute (a hash again), so daily, hourly and minute buckets agree exactly.
//! Usage never comes before a key's `created_at`, after its `expires_at`, after its workspace was
//! archived, after `now` (the current bucket is partial), and a key that is not `active` stopped
//! being used within five months of its creation.
//!
//! Claude Code activity works the same way per member (and former member, until removal): about
//! half of the members use Claude Code, some of them stopped, the others never did; a few keys
//! show up as `api_actor`s.
//!
//! Choices where the contract is silent: `next_page` is a short token naming the next bucket (or
//! day and offset) with a check value, so a made-up token is a 400; grouped results in a bucket are
//! ordered by their grouping keys; `speed` appears in an item only when grouped by it; a
//! `workspace_ids[]` filter with the Default Workspace's real id matches its keys.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::error::ApiError;
use super::model::{parse_ts, ApiKey, Micros, Principal};
use super::ops::Body;
use super::prng::mix;
use super::query::Params;
use super::state::SimState;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// Models the simulated traffic uses.
const MODELS: &[&str] = &[
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-1-20250805",
    "claude-haiku-4-5-20251001",
    "claude-3-5-haiku-20241022",
];
const SERVICE_TIERS: &[&str] = &[
    "standard",
    "batch",
    "priority",
    "priority_on_demand",
    "flex",
    "flex_discount",
];
const CONTEXT_WINDOWS: &[&str] = &["0-200k", "200k-1M"];
const INFERENCE_GEOS: &[&str] = &["global", "us", "not_available"];
const SPEEDS: &[&str] = &["standard", "fast"];
/// The `group_by[]` dimensions, in the order grouping keys are compared.
const DIMENSIONS: &[&str] = &[
    "api_key_id",
    "workspace_id",
    "account_id",
    "service_account_id",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "speed",
];

/// A hash of the seed and a few numbers.
fn h(seed: u64, parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(mix(seed ^ 0x7573_6167_6531), |acc, &p| mix(acc ^ p))
}

/// A hash of a text (FNV-1a, then mixed).
fn text_hash(s: &str) -> u64 {
    let mut x: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        x ^= u64::from(b);
        x = x.wrapping_mul(0x0100_0000_01b3);
    }
    mix(x)
}

/// A value in `[0, 1)` from a hash.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// How one key is used; see the module documentation.
struct KeyProfile<'a> {
    key: &'a ApiKey,
    kh: u64,
    /// Usage happens in `[from, until)` (seconds).
    from: i64,
    until: i64,
    day_p: f64,
    hour_p: f64,
    scale: u64,
    workspace_id: Option<&'a str>,
    account_id: Option<&'a str>,
    service_account_id: Option<&'a str>,
    geo: &'static str,
    model: &'static str,
}

fn key_profile<'a>(s: &'a SimState, seed: u64, k: &'a ApiKey) -> KeyProfile<'a> {
    let kh = h(seed, &[text_hash(&k.id)]);
    let class = kh % 100;
    let created = k.created_at.timestamp();
    let mut until = i64::MAX;
    let (day_p, hour_p) = match class {
        0..12 => {
            until = created;
            (0.0, 0.0)
        }
        12..40 => {
            until = created + DAY * (7 + (mix(kh ^ 1) % 150) as i64);
            (0.6, 0.2)
        }
        40..65 => (0.35, 0.12),
        _ => (0.92, 0.45),
    };
    if k.status != "active" {
        until = until.min(created + DAY * (1 + (mix(kh ^ 2) % 150) as i64));
    }
    if let Some(e) = k.expires_at {
        until = until.min(e.timestamp());
    }
    if let Some(ws) = k.workspace_id.as_deref().and_then(|w| s.workspaces.get(w)) {
        if let Some(a) = ws.archived_at {
            until = until.min(a.timestamp());
        }
    }
    let workspace_id = k
        .workspace_id
        .as_deref()
        .filter(|w| *w != s.default_workspace_id);
    let user = |id: &'a str| Some(id);
    let (account_id, service_account_id) = match (&k.principal, &k.created_by) {
        (Some(Principal::User { user_id }), _) => (user(user_id.as_str()), None),
        (Some(Principal::ServiceAccount { service_account_id }), _) => {
            (None, Some(service_account_id.as_str()))
        }
        (None, Some(by)) if by.kind == "user" => (Some(by.id.as_str()), None),
        (None, Some(by)) if by.kind == "service_account" => (None, Some(by.id.as_str())),
        _ => (None, None),
    };
    let g = mix(kh ^ 3) % 100;
    let geo = if g < 80 {
        "global"
    } else if g < 95 {
        "us"
    } else {
        "not_available"
    };
    KeyProfile {
        key: k,
        kh,
        from: created,
        until,
        day_p,
        hour_p,
        scale: 1 + mix(kh ^ 4) % 40,
        workspace_id,
        account_id,
        service_account_id,
        geo,
        model: MODELS[(mix(kh ^ 5) % MODELS.len() as u64) as usize],
    }
}

/// One burst of requests of one key.
struct Event {
    time: i64,
    model: &'static str,
    service_tier: &'static str,
    context_window: &'static str,
    speed: &'static str,
    totals: Totals,
}

#[derive(Clone, Copy, Default)]
struct Totals {
    uncached: u64,
    cache_5m: u64,
    cache_1h: u64,
    cache_read: u64,
    output: u64,
    web_search: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.uncached += o.uncached;
        self.cache_5m += o.cache_5m;
        self.cache_1h += o.cache_1h;
        self.cache_read += o.cache_read;
        self.output += o.output;
        self.web_search += o.web_search;
    }
}

/// Calls `f` for each burst of `p` in `[t0, t1)` (seconds, `t1` already capped at `now`).
fn events(p: &KeyProfile<'_>, t0: i64, t1: i64, mut f: impl FnMut(Event)) {
    let (t0, t1) = (t0.max(p.from), t1.min(p.until));
    if t0 >= t1 || p.day_p == 0.0 {
        return;
    }
    let first_day = t0.div_euclid(DAY);
    let last_day = (t1 - 1).div_euclid(DAY);
    for day in first_day..=last_day {
        let dh = mix(p.kh ^ (day as u64).wrapping_mul(0x9E37_79B9));
        if unit(dh) >= p.day_p {
            continue;
        }
        let h0 = if day == first_day {
            (t0 - day * DAY) / HOUR
        } else {
            0
        };
        let h1 = if day == last_day {
            (t1 - 1 - day * DAY) / HOUR
        } else {
            23
        };
        for hour in h0..=h1 {
            let e = mix(dh ^ (hour as u64 + 1));
            if unit(e) >= p.hour_p {
                continue;
            }
            let time = day * DAY + hour * HOUR + 60 * (mix(e ^ 1) % 60) as i64;
            if time < t0 || time >= t1 {
                continue;
            }
            let r = mix(e ^ 2);
            let model = if r % 10 < 7 {
                p.model
            } else {
                MODELS[((r >> 8) % MODELS.len() as u64) as usize]
            };
            let tier = match (r >> 16) % 100 {
                0..85 => "standard",
                85..93 => "batch",
                93..96 => "priority",
                96..98 => "flex",
                98 => "priority_on_demand",
                _ => "flex_discount",
            };
            let uncached = p.scale * (200 + (r >> 24) % 5_000);
            f(Event {
                time,
                model,
                service_tier: tier,
                context_window: if (r >> 40).is_multiple_of(20) {
                    "200k-1M"
                } else {
                    "0-200k"
                },
                speed: if (r >> 45).is_multiple_of(20) {
                    "fast"
                } else {
                    "standard"
                },
                totals: Totals {
                    uncached,
                    cache_5m: uncached / 3,
                    cache_1h: if (r >> 50).is_multiple_of(4) {
                        uncached / 5
                    } else {
                        0
                    },
                    cache_read: uncached * ((r >> 52) % 6),
                    output: uncached / 4 + (r >> 56),
                    web_search: if (r >> 58).is_multiple_of(8) {
                        1 + (r >> 61)
                    } else {
                        0
                    },
                },
            });
        }
    }
}

/// A bucket width: its seconds and its default and largest `limit`.
fn width(text: &str) -> Result<(i64, usize, usize), ApiError> {
    match text {
        "1d" => Ok((DAY, 7, 31)),
        "1h" => Ok((HOUR, 24, 168)),
        "1m" => Ok((60, 60, 1440)),
        other => Err(ApiError::invalid(format!(
            "bucket_width: {other:?} is not one of 1d, 1h, 1m"
        ))),
    }
}

/// `limit` between 1 and `max`, `default` when absent.
fn limit(q: &Params, default: usize, max: usize) -> Result<usize, ApiError> {
    match q.one("limit") {
        None => Ok(default),
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if n >= 1 && n as u64 <= max as u64 => Ok(n as usize),
            _ => Err(ApiError::invalid(format!(
                "limit: must be an integer between 1 and {max}, got {text:?}"
            ))),
        },
    }
}

fn time_param(q: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    match q.one(name) {
        None => Ok(None),
        Some(text) => parse_ts(text).map(|t| Some(t.timestamp())).map_err(|_| {
            ApiError::invalid(format!("{name}: {text:?} is not an RFC 3339 date-time"))
        }),
    }
}

/// A `next_page` token for position `n` of a query kind, with a check value.
fn token(seed: u64, kind: u64, n: i64) -> String {
    let check = h(seed, &[kind, n as u64]) & 0xffff_ffff;
    format!("page_{kind:x}{n:x}g{check:08x}")
}

fn untoken(seed: u64, kind: u64, text: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::invalid(format!("page: {text:?} is not a page token of this report"));
    let rest = text.strip_prefix("page_").ok_or_else(bad)?;
    let (body, check) = rest.split_once('g').ok_or_else(bad)?;
    let kind_text = format!("{kind:x}");
    let n_text = body.strip_prefix(&kind_text).ok_or_else(bad)?;
    let n = i64::from_str_radix(n_text, 16).map_err(|_| bad())?;
    if token(seed, kind, n) != format!("page_{body}g{check}") {
        return Err(bad());
    }
    Ok(n)
}

fn check_values(q: &Params, name: &str, allowed: &[&str]) -> Result<(), ApiError> {
    for v in q.many(name) {
        if !allowed.contains(&v) {
            return Err(ApiError::invalid(format!(
                "{name}[]: {v:?} is not one of {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct CacheCreation {
    ephemeral_1h_input_tokens: u64,
    ephemeral_5m_input_tokens: u64,
}

#[derive(Serialize)]
struct ServerToolUse {
    web_search_requests: u64,
}

#[derive(Serialize)]
struct Item<'a> {
    uncached_input_tokens: u64,
    cache_creation: CacheCreation,
    cache_read_input_tokens: u64,
    output_tokens: u64,
    server_tool_use: ServerToolUse,
    api_key_id: Option<&'a str>,
    workspace_id: Option<&'a str>,
    account_id: Option<&'a str>,
    service_account_id: Option<&'a str>,
    model: Option<&'a str>,
    service_tier: Option<&'a str>,
    context_window: Option<&'a str>,
    inference_geo: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed: Option<&'a str>,
}

#[derive(Serialize)]
struct Bucket<'a> {
    starting_at: Micros,
    ending_at: Micros,
    results: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Report<T> {
    data: Vec<T>,
    has_more: bool,
    next_page: Option<String>,
}

fn to_body<T: Serialize>(v: &T) -> Result<Body, ApiError> {
    serde_json::to_vec(v).map_err(|e| ApiError::internal(format!("serialization failed: {e}")))
}

/// `GET /v1/organizations/usage_report/messages`.
pub(crate) fn messages(s: &SimState, seed: u64, q: &Params) -> Result<Body, ApiError> {
    let start =
        time_param(q, "starting_at")?.ok_or_else(|| ApiError::invalid("starting_at: required"))?;
    let ending = time_param(q, "ending_at")?;
    let (w, default_limit, max_limit) = width(q.one("bucket_width").unwrap_or("1d"))?;
    let limit = limit(q, default_limit, max_limit)?;
    let group_by = q.many("group_by");
    check_values(q, "group_by", DIMENSIONS)?;
    check_values(q, "service_tiers", SERVICE_TIERS)?;
    check_values(q, "context_window", CONTEXT_WINDOWS)?;
    check_values(q, "inference_geos", INFERENCE_GEOS)?;
    check_values(q, "speeds", SPEEDS)?;
    let first = start.div_euclid(w) * w;
    if let Some(e) = ending {
        if e <= start {
            return Err(ApiError::invalid("ending_at: must be after starting_at"));
        }
    }
    let page_start = match q.one("page") {
        None => first,
        Some(t) => {
            let n = untoken(seed, w as u64, t)?;
            if n < first || n % w != 0 {
                return Err(ApiError::invalid(format!(
                    "page: {t:?} does not belong to this query"
                )));
            }
            n
        }
    };
    let now = s.now().timestamp();
    // Buckets up to the one holding `now` (partial), and only those ending by `ending_at`.
    let mut end = (now.div_euclid(w) + 1) * w;
    if let Some(e) = ending {
        end = end.min(e.div_euclid(w) * w);
    }
    let total = if end > page_start {
        ((end - page_start) / w) as usize
    } else {
        0
    };
    let n = total.min(limit);
    let page_end = page_start + n as i64 * w;
    let has_more = total > limit;

    let grouped: Vec<bool> = DIMENSIONS.iter().map(|d| group_by.contains(d)).collect();
    let filter = |name: &str| q.many(name);
    let (f_keys, f_ws, f_acc, f_svc) = (
        filter("api_key_ids"),
        filter("workspace_ids"),
        filter("account_ids"),
        filter("service_account_ids"),
    );
    let (f_models, f_tiers, f_cw, f_geo, f_speed) = (
        filter("models"),
        filter("service_tiers"),
        filter("context_window"),
        filter("inference_geos"),
        filter("speeds"),
    );
    let matches = |f: &[&str], v: Option<&str>| f.is_empty() || v.is_some_and(|v| f.contains(&v));

    type Group<'a> = [Option<&'a str>; 9];
    let mut buckets: Vec<BTreeMap<Group<'_>, Totals>> = (0..n).map(|_| BTreeMap::new()).collect();
    if n > 0 {
        let keys: Vec<&ApiKey> = if f_keys.is_empty() {
            s.api_keys.iter().collect()
        } else {
            f_keys.iter().filter_map(|id| s.api_keys.get(id)).collect()
        };
        let t1 = page_end.min(now);
        for k in keys {
            let p = key_profile(s, seed, k);
            let ws_real = k.workspace_id.as_deref();
            if !(f_ws.is_empty() || ws_real.is_some_and(|w| f_ws.contains(&w)))
                || !matches(&f_acc, p.account_id)
                || !matches(&f_svc, p.service_account_id)
                || !matches(&f_geo, Some(p.geo))
            {
                continue;
            }
            events(&p, page_start, t1, |e| {
                if !matches(&f_models, Some(e.model))
                    || !matches(&f_tiers, Some(e.service_tier))
                    || !matches(&f_cw, Some(e.context_window))
                    || !matches(&f_speed, Some(e.speed))
                {
                    return;
                }
                let values = [
                    Some(p.key.id.as_str()),
                    p.workspace_id,
                    p.account_id,
                    p.service_account_id,
                    Some(e.model),
                    Some(e.service_tier),
                    Some(e.context_window),
                    Some(p.geo),
                    Some(e.speed),
                ];
                let mut g: Group<'_> = [None; 9];
                for (i, v) in values.into_iter().enumerate() {
                    if grouped[i] {
                        g[i] = v;
                    }
                }
                let b = ((e.time - page_start) / w) as usize;
                if let Some(bucket) = buckets.get_mut(b) {
                    bucket.entry(g).or_default().add(&e.totals);
                }
            });
        }
    }
    let data = buckets
        .into_iter()
        .enumerate()
        .map(|(i, groups)| Bucket {
            starting_at: Micros(at(page_start + i as i64 * w)),
            ending_at: Micros(at(page_start + (i as i64 + 1) * w)),
            results: groups
                .into_iter()
                .map(|(g, t)| Item {
                    uncached_input_tokens: t.uncached,
                    cache_creation: CacheCreation {
                        ephemeral_1h_input_tokens: t.cache_1h,
                        ephemeral_5m_input_tokens: t.cache_5m,
                    },
                    cache_read_input_tokens: t.cache_read,
                    output_tokens: t.output,
                    server_tool_use: ServerToolUse {
                        web_search_requests: t.web_search,
                    },
                    api_key_id: g[0],
                    workspace_id: g[1],
                    account_id: g[2],
                    service_account_id: g[3],
                    model: g[4],
                    service_tier: g[5],
                    context_window: g[6],
                    inference_geo: g[7],
                    speed: g[8],
                })
                .collect(),
        })
        .collect();
    to_body(&Report {
        data,
        has_more,
        next_page: has_more.then(|| token(seed, w as u64, page_end)),
    })
}

/// One Claude Code actor of a day.
enum Actor<'a> {
    User { id: &'a str, email: &'a str },
    Key { name: &'a str },
}

/// Whether a person or key is a Claude Code user, and from when to when (seconds).
fn cc_profile(
    seed: u64,
    id: &str,
    role: &str,
    from: i64,
    until: i64,
) -> Option<(u64, i64, i64, f64)> {
    let ph = h(seed, &[0xcc, text_hash(id)]);
    let share = match role {
        "claude_code_user" | "developer" => 75,
        "key" => 6,
        _ => 35,
    };
    if ph % 100 >= share {
        return None;
    }
    let mut until = until;
    if mix(ph ^ 1) % 100 < 25 {
        until = until.min(from + DAY * (10 + (mix(ph ^ 2) % 120) as i64));
    }
    Some((ph, from, until, 0.35 + 0.5 * unit(mix(ph ^ 3))))
}

/// Activity of a Claude Code actor on `day` (a day number), if any, before `now`.
fn cc_active(p: (u64, i64, i64, f64), day: i64, now: i64) -> Option<u64> {
    let (ph, from, until, rate) = p;
    let dh = mix(ph ^ (day as u64).wrapping_mul(0x51_7CC1_B727));
    if unit(dh) >= rate {
        return None;
    }
    // The first session of the day starts at a time of the day drawn from the hash.
    let t = day * DAY + 7 * HOUR + (mix(dh ^ 9) % (12 * HOUR as u64)) as i64;
    (t >= from && t < until && t < now).then_some(dh)
}

fn cc_item(s: &SimState, actor: &Actor<'_>, day: i64, dh: u64) -> Value {
    let r = |i: u64| mix(dh ^ i);
    let sessions = 1 + r(1) % 8;
    let added = sessions * (r(2) % 400);
    let model = MODELS[(r(3) % 2) as usize];
    let input = sessions * (20_000 + r(4) % 200_000);
    let output = input / 6;
    let terminal = ["vscode", "iTerm.app", "tmux", "cursor", "ghostty"][(r(8) % 5) as usize];
    let (actor_json, customer_type, subscription) = match actor {
        Actor::User { email, .. } => (
            json!({"type": "user_actor", "email_address": email}),
            "subscription",
            json!("enterprise"),
        ),
        Actor::Key { name, .. } => (
            json!({"type": "api_actor", "api_key_name": name}),
            "api",
            Value::Null,
        ),
    };
    json!({
        "actor": actor_json,
        "core_metrics": {
            "num_sessions": sessions,
            "lines_of_code": {"added": added, "removed": added / 3},
            "commits_by_claude_code": r(5) % 6,
            "pull_requests_by_claude_code": r(6) % 3,
        },
        "customer_type": customer_type,
        "subscription_type": subscription,
        "date": Micros(at(day * DAY)),
        "is_remote": r(7).is_multiple_of(5),
        "organization_id": s.organization.id,
        "terminal_type": terminal,
        "model_breakdown": [{
            "model": model,
            "tokens": {
                "input": input,
                "output": output,
                "cache_read": input * 3,
                "cache_creation": input / 2,
            },
            "estimated_cost": {"amount": (input * 3 + output * 15) / 10_000, "currency": "USD"},
        }],
        "tool_actions": {
            "edit_tool": {"accepted": r(10) % 40, "rejected": r(11) % 5},
            "write_tool": {"accepted": r(12) % 10, "rejected": r(13) % 3},
            "notebook_edit_tool": {"accepted": 0, "rejected": 0},
            "multi_edit_tool": {"accepted": r(14) % 12, "rejected": r(15) % 2},
        },
    })
}

/// `GET /v1/organizations/usage_report/claude_code`: one day, actors in a stable order.
pub(crate) fn claude_code(s: &SimState, seed: u64, q: &Params) -> Result<Body, ApiError> {
    let text = q
        .one("starting_at")
        .ok_or_else(|| ApiError::invalid("starting_at: required"))?;
    let date = (text.len() == 10)
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::invalid(format!("starting_at: {text:?} is not a date YYYY-MM-DD"))
        })?;
    let limit = limit(q, 20, 1000)?;
    let day = date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp().div_euclid(DAY))
        .unwrap_or_default();
    let kind = 0xcc00_0000 + day as u64;
    let offset = match q.one("page") {
        None => 0,
        Some(t) => usize::try_from(untoken(seed, kind, t)?).unwrap_or(0),
    };
    let now = s.now().timestamp();
    let mut actors: Vec<(Actor<'_>, u64)> = Vec::new();
    for u in s.users.iter() {
        if let Some(p) = cc_profile(seed, &u.id, &u.role, u.added_at.timestamp(), i64::MAX) {
            if let Some(dh) = cc_active(p, day, now) {
                actors.push((
                    Actor::User {
                        id: &u.id,
                        email: &u.email,
                    },
                    dh,
                ));
            }
        }
    }
    for f in &s.former_members {
        let p = cc_profile(
            seed,
            &f.id,
            &f.role,
            f.added_at.timestamp(),
            f.removed_at.timestamp(),
        );
        if let Some(dh) = p.and_then(|p| cc_active(p, day, now)) {
            actors.push((
                Actor::User {
                    id: &f.id,
                    email: &f.email,
                },
                dh,
            ));
        }
    }
    for k in s.api_keys.iter() {
        let kp = key_profile(s, seed, k);
        if let Some(p) = cc_profile(seed, &k.id, "key", kp.from, kp.until) {
            if let Some(dh) = cc_active(p, day, now) {
                actors.push((Actor::Key { name: &k.name }, dh));
            }
        }
    }
    // Two keys may share a name; an api actor is named once per day.
    let mut seen = std::collections::HashSet::new();
    actors.retain(|(a, _)| match a {
        Actor::User { id, .. } => seen.insert(("u", *id)),
        Actor::Key { name, .. } => seen.insert(("k", *name)),
    });
    let total = actors.len();
    let page: Vec<Value> = actors
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(a, dh)| cc_item(s, a, day, *dh))
        .collect();
    let next = offset + page.len();
    let has_more = next < total;
    to_body(&Report {
        data: page,
        has_more,
        next_page: has_more.then(|| token(seed, kind, next as i64)),
    })
}

/// One member's last days of activity, as the usage reports show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberUsage {
    /// The last UTC day with messages usage attributed to the member's account (through the keys
    /// whose `account_id` the report gives as theirs), if any.
    pub last_api: Option<NaiveDate>,
    /// The last UTC day the member appears in the Claude Code report, if any.
    pub last_claude_code: Option<NaiveDate>,
}

/// What the two usage reports say up to a time, worked out from the same model that serves them:
/// the ground truth a test compares orgwarden's findings with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageTruth {
    /// Every API key: the last UTC day it has messages usage before `now`, `None` if it never had.
    pub key_last_used: BTreeMap<String, Option<NaiveDate>>,
    /// Every current member, by user id.
    pub members: BTreeMap<String, MemberUsage>,
}

fn day_date(day: i64) -> NaiveDate {
    at(day * DAY).date_naive()
}

/// The last day (a day number) on which `p` has a burst before `now`, walking back from the
/// newest possible day through the same [`events`] the messages report adds up.
fn last_event_day(p: &KeyProfile<'_>, now: i64) -> Option<i64> {
    let end = now.min(p.until);
    if p.day_p == 0.0 || end <= p.from {
        return None;
    }
    let first = p.from.div_euclid(DAY);
    let mut day = (end - 1).div_euclid(DAY);
    while day >= first {
        let mut used = false;
        events(p, day * DAY, ((day + 1) * DAY).min(now), |_| used = true);
        if used {
            return Some(day);
        }
        day -= 1;
    }
    None
}

/// The last day (a day number) a Claude Code actor is active before `now`, through the same
/// [`cc_active`] the Claude Code report asks.
fn last_cc_day(p: (u64, i64, i64, f64), now: i64) -> Option<i64> {
    let (_, from, until, _) = p;
    let end = now.min(until);
    if end <= from {
        return None;
    }
    let first = from.div_euclid(DAY);
    (first..=(end - 1).div_euclid(DAY))
        .rev()
        .find(|&day| cc_active(p, day, now).is_some())
}

impl SimState {
    /// The usage the reports serve up to `now` (seed `seed`): each key's last day of use and each
    /// current member's last API and Claude Code days. Nothing is stored; this walks the same
    /// profiles and hashes as `GET /v1/organizations/usage_report/messages` (grouped by
    /// `api_key_id` or `account_id`) and `…/claude_code`.
    pub fn usage_truth(&self, seed: u64, now: DateTime<Utc>) -> UsageTruth {
        let now = now.timestamp();
        let mut truth = UsageTruth::default();
        let mut by_account: BTreeMap<&str, i64> = BTreeMap::new();
        for k in self.api_keys.iter() {
            let p = key_profile(self, seed, k);
            let last = last_event_day(&p, now);
            if let (Some(account), Some(day)) = (p.account_id, last) {
                let latest = by_account.entry(account).or_insert(day);
                *latest = (*latest).max(day);
            }
            truth.key_last_used.insert(k.id.clone(), last.map(day_date));
        }
        for u in self.users.iter() {
            let last_claude_code =
                cc_profile(seed, &u.id, &u.role, u.added_at.timestamp(), i64::MAX)
                    .and_then(|p| last_cc_day(p, now))
                    .map(day_date);
            truth.members.insert(
                u.id.clone(),
                MemberUsage {
                    last_api: by_account.get(u.id.as_str()).copied().map(day_date),
                    last_claude_code,
                },
            );
        }
        truth
    }
}
