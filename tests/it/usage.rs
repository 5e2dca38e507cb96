//! The usage ingest against the simulator over TCP, with a `ManualClock`: the backfill, the
//! daily increment, the current day refetched, a failed fetch and a restart mid-backfill.

use chrono::{Duration as Span, NaiveDate};
use orgwarden::jobs;
use orgwarden::store::Store;
use orgwarden_sim::{Faults, SimOptions};

use crate::app::TestApp;

const USAGE: &str = "[usage]\nbackfill_days = 40\n";

fn today(app: &TestApp) -> NaiveDate {
    app.now().date_naive()
}

/// Stored days, oldest first, with whether each is complete.
fn days(store: &Store) -> Vec<(NaiveDate, bool)> {
    store.usage_days().unwrap()
}

/// Runs the ingest and returns its summary and the requests the simulator served for it.
async fn ingest(app: &mut TestApp) -> (orgwarden::usage_ingest::IngestSummary, u64) {
    let before = app.sim.requests_served();
    let summary = jobs::usage_job(&mut app.ctx()).await.expect("usage ingest");
    (summary, app.sim.requests_served() - before)
}

/// The same days ingested from scratch into another database, as a reference.
async fn reference_rows(app: &TestApp) -> std::collections::BTreeMap<NaiveDate, (u64, u64, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&dir.path().join("ref.db"), "test", app.now()).unwrap();
    let mut ctx = jobs::JobContext::new(
        &app.config,
        &mut store,
        std::sync::Arc::new(app.clock.clone()),
    );
    jobs::usage_job(&mut ctx).await.expect("reference ingest");
    store.usage_rows_by_day().unwrap()
}

#[tokio::test]
async fn backfill_then_each_run_fetches_only_the_days_not_complete() {
    let mut app = TestApp::new(USAGE).await;
    let (summary, served) = ingest(&mut app).await;
    // 40 days: one messages page of 31 days and one of 9, and one Claude Code call per day.
    assert_eq!(summary.days, 40);
    assert_eq!(summary.chunks, 2);
    assert_eq!(summary.complete_days, 39, "today is not over");
    assert_eq!(summary.requests, 42);
    assert_eq!(served, 42);
    let stored = days(&app.store);
    assert_eq!(stored.len(), 40);
    assert_eq!(stored.last(), Some(&(today(&app), false)));
    assert!(stored[..39].iter().all(|(_, complete)| *complete));

    let view = app.store.usage_view().unwrap().expect("a view");
    assert_eq!(view.failure, None);
    assert_eq!(view.covered_to, Some(today(&app)));
    assert_eq!(view.covered_from, Some(today(&app) - Span::days(39)));
    assert!(!view.key_last_used.is_empty());
    assert!(!view.account_last_api.is_empty());
    assert!(!view.claude_code_last_active.is_empty());
    // Storage follows activity: a row per (key, day) used, never one per key per day.
    let (key_rows, _, _) = app.store.usage_row_counts().unwrap();
    let keys = app.sim.snapshot_state().api_keys().len() as u64;
    assert!(key_rows > 0 && key_rows < keys * 40, "{key_rows} rows");

    // The same day again: only today, one messages call and one Claude Code call.
    let (summary, served) = ingest(&mut app).await;
    assert_eq!((summary.days, summary.complete_days, served), (1, 0, 2));

    // The next day: yesterday (now over, stored complete) and the new today, in one chunk.
    app.advance(Span::days(1));
    let (summary, served) = ingest(&mut app).await;
    assert_eq!(
        (summary.days, summary.complete_days, summary.chunks, served),
        (2, 1, 1, 3)
    );
    let stored = days(&app.store);
    assert_eq!(stored.len(), 41);
    assert_eq!(
        stored[stored.len() - 2..],
        [(today(&app) - Span::days(1), true), (today(&app), false)]
    );
    // Each ingest left a `usage.ingested` event naming its days.
    let events = app.store.events(None, 1000).unwrap();
    let ingested: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "usage.ingested")
        .collect();
    assert_eq!(ingested.len(), 4);
    assert_eq!(
        ingested[3].payload["days"],
        serde_json::json!([
            (today(&app) - Span::days(1)).to_string(),
            today(&app).to_string()
        ])
    );
    // What was stored equals a fresh ingest of the same window at the same time.
    let mut rows = app.store.usage_rows_by_day().unwrap();
    let reference = reference_rows(&app).await;
    rows.retain(|day, _| *day >= today(&app) - Span::days(39));
    assert_eq!(rows, reference);
}

#[tokio::test]
async fn the_current_day_is_refetched_and_replaced_until_it_is_over() {
    let mut app = TestApp::new("[usage]\nbackfill_days = 2\n").await;
    ingest(&mut app).await;
    let morning = app.store.usage_rows_by_day().unwrap();
    // Later the same day the simulator shows more of today's usage.
    app.advance(Span::hours(12));
    let (summary, _) = ingest(&mut app).await;
    assert_eq!((summary.days, summary.complete_days), (1, 0));
    let evening = app.store.usage_rows_by_day().unwrap();
    let day = today(&app);
    let (before, after) = (morning.get(&day).copied(), evening.get(&day).copied());
    assert!(
        after.unwrap_or_default().0 >= before.unwrap_or_default().0,
        "{before:?} -> {after:?}"
    );
    // Replaced, not added to: the same as a fresh fetch now.
    assert_eq!(evening, reference_rows(&app).await);
    // Past midnight (and the settling hour) it is complete and never fetched again.
    app.advance(Span::hours(12));
    let (summary, _) = ingest(&mut app).await;
    assert_eq!((summary.days, summary.complete_days), (2, 1));
    assert!(days(&app.store).contains(&(day, true)));
}

#[tokio::test]
async fn a_failed_fetch_is_recorded_and_marks_no_day_complete() {
    let mut app = TestApp::new(USAGE).await;
    app.snapshot().await;
    app.sim.set_faults(Faults {
        error_rate: 1.0,
        path_contains: Some("usage_report".into()),
        ..Faults::default()
    });
    let error = jobs::usage_job(&mut app.ctx()).await.unwrap_err();
    assert!(error.to_string().contains("usage report"), "{error:#}");
    assert!(days(&app.store).is_empty());
    let view = app
        .store
        .usage_view()
        .unwrap()
        .expect("a failed attempt is a view");
    let failure = view.failure.expect("failure recorded");
    assert!(failure.contains("usage_report/messages"), "{failure}");
    assert!(view.key_last_used.is_empty());
    // The audit cycle goes on without usage and `status` names the failure.
    let summary = app.cycle().await;
    assert!(summary.snapshot.run_id > 0);
    let status = app.status();
    let usage = status.usage.clone().expect("usage status");
    assert!(usage.last_error.is_some());
    assert!(orgwarden::status::render_text(&status).contains("usage: days - to -"));
    // Once the API answers again, the next ingest clears the failure.
    app.sim.set_faults(Faults::default());
    app.cycle().await;
    let view = app.store.usage_view().unwrap().unwrap();
    assert_eq!(view.failure, None);
    assert_eq!(days(&app.store).len(), 40);
}

#[tokio::test]
async fn a_restart_mid_backfill_resumes_without_gaps_or_duplicates() {
    let mut app = TestApp::with_options(SimOptions::default(), USAGE).await;
    // The first chunk (31 days) takes 32 requests; the 33rd, the second chunk's messages page,
    // fails: the process "dies" there.
    app.sim.set_faults(Faults {
        error_rate: 1.0,
        path_contains: Some("usage_report".into()),
        after_requests: 32,
        ..Faults::default()
    });
    assert!(jobs::usage_job(&mut app.ctx()).await.is_err());
    // What the first chunk committed is in the file, read by another connection.
    let reader = Store::open_reader(&app.config.store.path).unwrap();
    let stored = days(&reader);
    assert_eq!(stored.len(), 31);
    assert_eq!(
        stored.first().map(|d| d.0),
        Some(today(&app) - Span::days(30))
    );
    let view = reader.usage_view().unwrap().unwrap();
    assert!(view.failure.is_some());
    assert_eq!(view.covered_from, Some(today(&app) - Span::days(30)));
    drop(reader);

    // The restart asks only for the 9 missing days and today (not over, so never complete):
    // two chunks, two messages pages and ten Claude Code days.
    app.sim.set_faults(Faults::default());
    let (summary, served) = ingest(&mut app).await;
    assert_eq!((summary.days, summary.chunks, served), (10, 2, 12));
    let stored = days(&app.store);
    assert_eq!(stored.len(), 40);
    for pair in stored.windows(2) {
        assert_eq!(pair[0].0.succ_opt(), Some(pair[1].0), "a gap in {stored:?}");
    }
    assert_eq!(
        app.store.usage_view().unwrap().unwrap().covered_from,
        Some(today(&app) - Span::days(39))
    );
    assert_eq!(
        app.store.usage_rows_by_day().unwrap(),
        reference_rows(&app).await
    );
}

#[tokio::test]
async fn a_claude_code_failure_after_a_chunks_key_rows_were_written_stores_nothing_of_it() {
    let mut app = TestApp::with_options(SimOptions::default(), USAGE).await;
    // The first chunk takes 32 requests; the second chunk's messages page (the 33rd) is
    // answered and its key and account rows go into the chunk's open transaction while its
    // Claude Code days are fetched, and those fail.
    app.sim.set_faults(Faults {
        error_rate: 1.0,
        path_contains: Some("usage_report".into()),
        after_requests: 33,
        ..Faults::default()
    });
    let error = jobs::usage_job(&mut app.ctx()).await.unwrap_err();
    assert!(error.to_string().contains("claude_code"), "{error:#}");
    // Only the first chunk's days, and rows of those days only, are in the file.
    let reader = Store::open_reader(&app.config.store.path).unwrap();
    let stored = days(&reader);
    assert_eq!(stored.len(), 31);
    let first = today(&app) - Span::days(30);
    assert_eq!(stored.first().map(|d| d.0), Some(first));
    let rows = reader.usage_rows_by_day().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.keys().all(|day| *day >= first), "{rows:?}");
    let view = reader.usage_view().unwrap().unwrap();
    assert!(view.key_last_used.values().all(|day| *day >= first));
    drop(reader);

    // The next ingest fetches the second chunk again and ends where a clean one does.
    app.sim.set_faults(Faults::default());
    let (summary, _) = ingest(&mut app).await;
    assert_eq!((summary.days, summary.chunks), (10, 2));
    assert_eq!(
        app.store.usage_rows_by_day().unwrap(),
        reference_rows(&app).await
    );
}

#[tokio::test]
async fn disabled_usage_fetches_nothing() {
    let mut app = TestApp::new("[usage]\nenabled = false\n").await;
    app.cycle().await;
    assert!(app.store.usage_view().unwrap().is_none());
    assert!(app.store.last_usage_ingest().unwrap().is_none());
    assert!(app.status().usage.is_none());
    app.reconfigure(USAGE);
    app.cycle().await;
    assert_eq!(days(&app.store).len(), 40);
    assert!(app.status().usage.is_some_and(|u| u.last_error.is_none()));
}

/// A configuration with only the settings usage retention reads.
fn retention_config(text: &str) -> orgwarden::config::Config {
    let env = orgwarden::config::Environment {
        vars: vec![(
            "ANTHROPIC_ADMIN_KEY".into(),
            orgwarden_sim::DEMO_ADMIN_KEY.into(),
        )],
    };
    orgwarden::config::Config::from_toml(text, &env)
        .expect("valid configuration")
        .0
}

/// A chunk of `days` with one row of each kind per day.
fn synthetic_chunk(days: &[(NaiveDate, bool)]) -> orgwarden::store::UsageChunk {
    use orgwarden::store::{AccountDay, CodeActor, CodeDay, KeyDay, UsageChunk};
    UsageChunk {
        days: days.to_vec(),
        keys: days
            .iter()
            .map(|(day, _)| KeyDay {
                api_key_id: "apikey_01".into(),
                day: *day,
                account_id: Some("user_01".into()),
                input_tokens: 10,
                output_tokens: 2,
                web_search_requests: 0,
            })
            .collect(),
        accounts: days
            .iter()
            .map(|(day, _)| AccountDay {
                account_id: "user_01".into(),
                day: *day,
                input_tokens: 10,
                output_tokens: 2,
            })
            .collect(),
        claude_code: days
            .iter()
            .map(|(day, _)| CodeDay {
                actor: CodeActor::User("jane@example.com".into()),
                day: *day,
                sessions: 1,
                lines_added: 3,
                lines_removed: 1,
                commits: 0,
                pull_requests: 0,
            })
            .collect(),
    }
}

#[test]
fn retention_drops_old_usage_days_keeps_the_needed_ones_and_never_refetches_them() {
    use orgwarden::usage_ingest::{plan_days, usage_days_needed, usage_first_kept};
    let now = TestApp::start();
    let today = now.date_naive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orgwarden.db");
    let mut store = Store::open_writer(&path, "test", now).unwrap();
    // 120 days stored, today not complete, and an ingest attempt on each of three days.
    let stored: Vec<(NaiveDate, bool)> = (0..120)
        .rev()
        .map(|ago| (today - Span::days(ago), ago > 0))
        .collect();
    store
        .write_usage_chunk(&synthetic_chunk(&stored), now)
        .unwrap();
    for ago in [100, 50, 10] {
        let at = now - Span::days(ago);
        store
            .record_usage_ingest(&orgwarden::store::IngestRecord {
                started_at: at,
                finished_at: at,
                days: 1,
                requests: 2,
                error: None,
            })
            .unwrap();
    }
    let rows_before = store.usage_rows_by_day().unwrap();

    // `[store] keep_days = 5`, but the rules read 30 and 20 days and the backfill is 10: the
    // last 30 days stay.
    let config = retention_config(
        "[store]\nkeep_days = 5\n[usage]\nbackfill_days = 10\n\
         [rules.dormant_keys]\nmax_idle_days = 30\n[rules.dormant_members]\nmax_idle_days = 20\n",
    );
    let needed = usage_days_needed(&config);
    assert_eq!(needed, 30);
    // A long retention keeps everything.
    assert_eq!(
        store
            .prune_usage(usage_first_kept(now, 400, needed))
            .unwrap(),
        0
    );
    let first_kept = usage_first_kept(now, config.store.keep_days, needed);
    assert_eq!(first_kept, today - Span::days(29));
    assert_eq!(store.prune_usage(first_kept).unwrap(), 90);
    drop(store);

    // In the file, read by another connection: the old days and their rows are gone, the
    // needed ones untouched.
    let mut store = Store::open_writer(&path, "test", now).unwrap();
    let days = days(&store);
    assert_eq!(days.len(), 30);
    assert_eq!(days.first(), Some(&(first_kept, true)));
    assert_eq!(days.last(), Some(&(today, false)));
    let rows = store.usage_rows_by_day().unwrap();
    let mut kept_before = rows_before.clone();
    kept_before.retain(|day, _| *day >= first_kept);
    assert_eq!(rows, kept_before);
    assert_eq!(rows.len(), 30);
    assert_eq!(store.usage_row_counts().unwrap(), (30, 30, 30));
    // The attempts before the first kept day go; the newest always stays (it decides the
    // view's failure).
    assert_eq!(store.usage_ingest_count().unwrap(), 1);
    // The rules still find their 30 days covered.
    let view = store.usage_view().unwrap().unwrap();
    assert_eq!(view.covered_from, Some(first_kept));
    assert_eq!(view.failure, None);

    // The ingest's plan asks only for today, never for a pruned day, whether the backfill is
    // the configured 10 days or as long as what was kept.
    for backfill in [10, needed] {
        let plan = plan_days(&store.usage_days().unwrap(), now, backfill, 31);
        let asked: Vec<NaiveDate> = plan.iter().flat_map(|c| c.days()).collect();
        assert_eq!(asked, vec![today], "backfill {backfill}");
    }
    // Days later, the same: retention moves on with the clock, and the plan only asks for the
    // days since.
    let later = now + Span::days(3);
    let first_kept = usage_first_kept(later, config.store.keep_days, needed);
    assert_eq!(store.prune_usage(first_kept).unwrap(), 3);
    let plan = plan_days(&store.usage_days().unwrap(), later, 10, 31);
    let mut asked: Vec<NaiveDate> = plan.iter().flat_map(|c| c.days()).collect();
    asked.sort();
    let since: Vec<NaiveDate> = today.iter_days().take(4).collect();
    assert_eq!(asked, since);
    assert_eq!(since.last(), Some(&later.date_naive()));
}

#[tokio::test]
async fn the_audit_cycle_prunes_old_usage_days_and_fetches_only_new_ones() {
    let mut app = TestApp::new(
        "[usage]\nbackfill_days = 40\n[rules.dormant_keys]\nmax_idle_days = 30\n\
         [rules.dormant_members]\nmax_idle_days = 20\n",
    )
    .await;
    app.config.store.keep_days = 5;
    let first = app.cycle().await;
    assert_eq!(first.pruned_usage_days, 0);
    assert_eq!(days(&app.store).len(), 40);

    // Ten days on: the ten oldest days go (40 are needed: the backfill), the ten new ones and
    // the unfinished day of the last run are fetched, nothing older.
    app.advance(Span::days(10));
    let second = app.cycle().await;
    assert_eq!(second.pruned_usage_days, 10);
    let ingest = app.store.last_usage_ingest().unwrap().unwrap();
    assert_eq!((ingest.days, ingest.error), (11, None));
    let stored = days(&app.store);
    assert_eq!(stored.len(), 40);
    assert_eq!(
        stored.first().map(|d| d.0),
        Some(today(&app) - Span::days(39))
    );
    for pair in stored.windows(2) {
        assert_eq!(pair[0].0.succ_opt(), Some(pair[1].0), "a gap in {stored:?}");
    }
    // What stays is what a fresh ingest of the window stores: nothing older, nothing lost.
    assert_eq!(
        app.store.usage_rows_by_day().unwrap(),
        reference_rows(&app).await
    );
    // Again the same day: nothing to prune, only today fetched.
    let third = app.cycle().await;
    assert_eq!(third.pruned_usage_days, 0);
    assert_eq!(app.store.last_usage_ingest().unwrap().unwrap().days, 1);
}
