//! Issue 16's "done when", end to end: against the simulator, `orgwarden audit --format json`
//! lists exactly the dormant keys, dormant members and key-hygiene findings that the simulator's
//! own usage model (`SimState::usage_truth`, the hashes that generate the reports) implies, and
//! the next day's run fetches only the new day (and the finished yesterday).
//!
//! Day one runs in process on a `ManualClock` a day before the wall clock, the simulator frozen
//! with it; day two is the real binary (which reads the wall clock) with the simulator frozen at
//! the time the test started, so both sides agree on "today".

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration as Span, NaiveDate, Utc};
use orgwarden::clock::ManualClock;
use orgwarden::config::{Config, Environment};
use orgwarden::jobs::{self, JobContext};
use orgwarden::store::Store;
use orgwarden_sim::{SeedSizes, SimOptions, SimState, UsageTruth, DEMO_ADMIN_KEY};
use serde_json::Value;

use crate::helpers::*;

const SEED: u64 = 16;
const KEY_IDLE_DAYS: i64 = 90;
const MEMBER_IDLE_DAYS: i64 = 60;
const KEY_AGE_DAYS: i64 = 365;
const RULES: [&str; 3] = ["dormant_keys", "dormant_members", "key_hygiene"];

/// The three rules on, organization-scoped keys flagged, and a backfill covering the longest
/// `max_idle_days`.
fn settings() -> String {
    format!(
        "[usage]\nbackfill_days = {KEY_IDLE_DAYS}\n\n\
         [rules.dormant_keys]\nenabled = true\nmax_idle_days = {KEY_IDLE_DAYS}\n\n\
         [rules.dormant_members]\nenabled = true\nmax_idle_days = {MEMBER_IDLE_DAYS}\n\n\
         [rules.key_hygiene]\nenabled = true\nmax_key_age_days = {KEY_AGE_DAYS}\n\
         flag_org_scoped = true\n"
    )
}

/// Small enough for a debug build, large enough for every kind of key and member.
fn sizes() -> SeedSizes {
    SeedSizes {
        members: 250,
        invites: 10,
        workspaces: 6,
        keys: 350,
        workspace_members: 120,
    }
}

/// `(rule, subject id)` pairs.
type Findings = BTreeSet<(String, String)>;

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().map(|t| t.parse().expect("an RFC 3339 time"))
}

/// What the three rules must find at `now`, from the simulator's organization (as the API shows
/// it) and what its usage model says was used when: the definitions of issue 16, applied by hand.
fn expected(state: &SimState, truth: &UsageTruth, now: DateTime<Utc>) -> Findings {
    let today = now.date_naive();
    let idle =
        |last: Option<NaiveDate>, days: i64| last.is_none_or(|d| d < today - Span::days(days));
    let mut out = Findings::new();
    for key in state.api_keys() {
        let id = key["id"].as_str().unwrap().to_owned();
        let created = time(&key["created_at"]).unwrap();
        // Active, and not past its `expires_at` (then it no longer works).
        let working = key["status"] == "active" && time(&key["expires_at"]).is_none_or(|e| e > now);
        if !working {
            continue;
        }
        let last = truth.key_last_used[&id];
        if now - created > Span::days(KEY_IDLE_DAYS) && idle(last, KEY_IDLE_DAYS) {
            out.insert(("dormant_keys".into(), id.clone()));
        }
        let never_expires_and_old =
            key["expires_at"].is_null() && now - created > Span::days(KEY_AGE_DAYS);
        if never_expires_and_old || key["scope"]["type"] == "organization" {
            out.insert(("key_hygiene".into(), id));
        }
    }
    for user in state.users() {
        let id = user["id"].as_str().unwrap().to_owned();
        let usage = truth.members[&id];
        let last = usage.last_api.max(usage.last_claude_code);
        if now - time(&user["added_at"]).unwrap() > Span::days(MEMBER_IDLE_DAYS)
            && idle(last, MEMBER_IDLE_DAYS)
        {
            out.insert(("dormant_members".into(), id));
        }
    }
    out
}

fn by_rule(findings: &Findings, rule: &str) -> usize {
    findings.iter().filter(|(r, _)| r == rule).count()
}

/// Which pairs one side has and the other has not, for a readable failure.
fn differences(got: &Findings, want: &Findings) -> String {
    let extra: Vec<_> = got.difference(want).collect();
    let missing: Vec<_> = want.difference(got).collect();
    format!("found but not expected: {extra:?}\nexpected but not found: {missing:?}")
}

#[tokio::test]
async fn audit_lists_exactly_the_seeded_unused_access_and_the_next_day_fetches_one_day() {
    // The wall clock, to the second: the binary reads it on day two.
    let now = DateTime::from_timestamp(wall_now().timestamp(), 0).unwrap();
    let yesterday = now - Span::days(1);
    let sim = sim_with(SimOptions {
        seed: SEED,
        sizes: sizes(),
        now: Some(yesterday),
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orgwarden.db");
    let text = format!(
        "[api]\nbase_url = \"{}\"\nrequests_per_second = 0\nmax_retries = 2\n\
         total_deadline = \"60s\"\n\n[store]\npath = \"{}\"\n\n{}\n",
        sim.base_url(),
        db.display(),
        settings()
    );
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, &text).unwrap();
    let env = Environment {
        vars: vec![("ANTHROPIC_ADMIN_KEY".into(), DEMO_ADMIN_KEY.into())],
    };
    let (config, _) = Config::from_toml(&text, &env).expect("valid configuration");

    // Day one, in process at yesterday's time: snapshot, the 90-day backfill, the audit.
    {
        let mut store = Store::open_writer(&db, "test", yesterday).unwrap();
        let clock = ManualClock::new(yesterday);
        let mut ctx = JobContext::new(&config, &mut store, Arc::new(clock));
        jobs::snapshot_job(&mut ctx, false).await.expect("snapshot");
        let ingest = jobs::usage_job(&mut ctx).await.expect("usage backfill");
        assert_eq!(ingest.days, KEY_IDLE_DAYS as u64);
        let audit = jobs::audit_job(&mut ctx, None).expect("audit");
        for outcome in &audit.rules {
            if RULES.contains(&outcome.rule.as_str()) {
                assert_eq!(outcome.status.reason(), None, "{}", outcome.rule);
            }
        }
        let got: Findings = audit
            .result
            .findings
            .iter()
            .filter(|f| RULES.contains(&f.rule.as_str()) && f.status.as_str() != "resolved")
            .map(|f| (f.rule.clone(), f.subject_id.clone()))
            .collect();
        let state = sim.snapshot_state();
        let want = expected(&state, &state.usage_truth(SEED, yesterday), yesterday);
        assert_eq!(got, want, "day one\n{}", differences(&got, &want));
    }

    // Day two, the real binary, the simulator a day on (frozen at the test's start).
    sim.set_now(now);
    let (code, out, err) = run(orgwarden(&config_path, &["snapshot"])).await;
    assert_eq!(code, 0, "{out}{err}");
    let before = sim.requests_served();
    let (code, out, err) = run(orgwarden(&config_path, &["usage", "--fetch"])).await;
    let served = sim.requests_served() - before;
    assert_eq!(code, 0, "{out}{err}");
    // Yesterday (now over, stored complete) and today in one chunk: one messages page and one
    // Claude Code call per day.
    assert!(
        err.contains("usage: 2 days fetched (1 complete) in 3 requests"),
        "{err}"
    );
    assert_eq!(served, 3, "requests the simulator served for the increment");
    let (code, out, err) = run(orgwarden(&config_path, &["audit", "--format", "json"])).await;
    assert_eq!(code, 0, "{out}{err}");
    let after = wall_now();
    assert_eq!(
        after.date_naive(),
        now.date_naive(),
        "the test ran across midnight UTC, so the binary's today is not the simulator's: rerun it"
    );

    let listed: Vec<Value> = serde_json::from_str(&out).expect("audit JSON");
    let got: Findings = listed
        .iter()
        .filter(|f| {
            RULES.contains(&f["rule"].as_str().unwrap()) && f["status"].as_str() != Some("resolved")
        })
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_owned(),
                f["subject_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let state = sim.snapshot_state();
    let truth = state.usage_truth(SEED, now);
    let want = expected(&state, &truth, now);
    // The binary judged at some moment between `now` and `after`; no seeded key or member
    // crosses an age limit in those seconds (if one did, the expectation would be ambiguous).
    assert_eq!(
        want,
        expected(&state, &truth, after),
        "an object crossed a limit while the test ran: rerun it"
    );
    for rule in RULES {
        assert!(by_rule(&want, rule) > 0, "the seed has no {rule} finding");
    }
    // Every kind of evidence is exercised: keys used once then idle, keys never used, members
    // active only in Claude Code, organization-scoped keys.
    let used_then_idle = want
        .iter()
        .filter(|(r, id)| r == "dormant_keys" && truth.key_last_used[id].is_some())
        .count();
    let never_used = by_rule(&want, "dormant_keys") - used_then_idle;
    assert!(
        used_then_idle > 0 && never_used > 0,
        "{used_then_idle} / {never_used}"
    );
    let only_claude_code = truth.members.values().filter(|m| {
        m.last_api.is_none()
            && m.last_claude_code
                .is_some_and(|d| d >= now.date_naive() - Span::days(MEMBER_IDLE_DAYS))
    });
    assert!(
        only_claude_code.count() > 0,
        "no member active only in Claude Code"
    );
    assert_eq!(got, want, "day two\n{}", differences(&got, &want));

    // The store holds the 90-day window and the new day, without a gap, today not complete.
    let reader = Store::open_reader(&db).unwrap();
    let days = reader.usage_days().unwrap();
    assert_eq!(days.len(), KEY_IDLE_DAYS as usize + 1);
    for pair in days.windows(2) {
        assert_eq!(pair[0].0.succ_opt(), Some(pair[1].0), "a gap in {days:?}");
    }
    let today = now.date_naive();
    assert_eq!(
        days[days.len() - 2..],
        [(today - Span::days(1), true), (today, false)]
    );
    // `usage --format json` agrees with the simulator on every key's last day of use.
    let (code, out, err) = run(orgwarden(&config_path, &["usage", "--format", "json"])).await;
    assert_eq!(code, 0, "{out}{err}");
    let listing: Value = serde_json::from_str(&out).expect("usage JSON");
    let keys = listing["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), truth.key_last_used.len());
    let first = today - Span::days(KEY_IDLE_DAYS);
    for key in keys {
        let id = key["id"].as_str().unwrap();
        let want = truth.key_last_used[id].filter(|d| *d >= first);
        let got = key["last_used"]
            .as_str()
            .map(|d| d.parse::<NaiveDate>().unwrap());
        assert_eq!(got, want, "key {id}: {key}");
    }
    let members = listing["members"].as_array().expect("members");
    assert_eq!(members.len(), truth.members.len());
    let day = |v: &Value| v.as_str().map(|d| d.parse::<NaiveDate>().unwrap());
    for member in members {
        let id = member["user_id"].as_str().unwrap();
        let want = truth.members[id];
        assert_eq!(
            (
                day(&member["last_api_use"]),
                day(&member["last_claude_code"])
            ),
            (
                want.last_api.filter(|d| *d >= first),
                want.last_claude_code.filter(|d| *d >= first)
            ),
            "member {id}: {member}"
        );
    }
}
