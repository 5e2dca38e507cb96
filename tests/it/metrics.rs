//! Prometheus metrics: `/metrics` and the textfile parsed with a Prometheus text-format parser
//! and checked against the database; `/healthz` follows the staleness rule of `status` on a
//! ManualClock; `[metrics] listen` is loopback unless allowed.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration as Span;
use orgwarden::admin_api::AdminClient;
use orgwarden::config::{Config, Environment};
use orgwarden::exporter::{self, DbScrape};
use prometheus_parse::{Scrape, Value};

use crate::app::TestApp;

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

fn value(v: &Value) -> f64 {
    match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => *x,
        other => panic!("unexpected value {other:?}"),
    }
}

/// Samples of `metric` keyed by the values of `labels`.
fn samples(scrape: &Scrape, metric: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| {
            let key = labels
                .iter()
                .map(|l| s.labels.get(l).unwrap_or_default().to_owned())
                .collect();
            (key, value(&s.value))
        })
        .collect()
}

/// `SELECT <cols>, count(*) ... GROUP BY` straight from the SQLite file.
fn db_counts(app: &TestApp, sql: &str, n: usize) -> BTreeMap<Vec<String>, f64> {
    let conn = rusqlite::Connection::open(&app.config.store.path).unwrap();
    let mut statement = conn.prepare(sql).unwrap();
    statement
        .query_map([], |row| {
            let key = (0..n)
                .map(|i| row.get::<_, String>(i))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((key, row.get::<_, f64>(n)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn serve(app: &TestApp, client: Option<AdminClient>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let source = Arc::new(DbScrape {
        db: app.config.store.path.clone(),
        config: app.config.clone(),
        clock: Arc::new(app.clock.clone()),
        live: None,
        client,
    });
    tokio::spawn(exporter::serve(listener, source, std::future::pending()));
    format!("http://{addr}")
}

#[tokio::test]
async fn metrics_match_the_database() {
    // Enforced remediation, so the audit trail has rows to count.
    let mut app = TestApp::new(
        "[remediation]\nmode = \"enforce\"\nmax_fraction = 1.0\nmax_actions_per_run = 1000\n\
         min_finding_age = \"0s\"\nmin_consecutive_snapshots = 1\n\n\
         [rules.stale_invites]\nremediate = true\nmax_pending_days = 7\n\
         [rules.orphaned_keys]\nremediate = true\n",
    )
    .await;
    let client = app.ctx().client.clone().unwrap();
    for hour in 0..2 {
        app.advance(Span::hours(hour));
        // One client across cycles, as in the daemon, so its counters add up.
        let mut ctx = app.ctx();
        ctx.client = Ok(client.clone());
        orgwarden::jobs::audit_cycle(&mut ctx).await.unwrap();
    }
    let base = serve(&app, Some(client.clone())).await;
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let scrape = parse(&text);

    let findings = samples(
        &scrape,
        "orgwarden_findings",
        &["rule", "severity", "status"],
    );
    assert!(!findings.is_empty(), "the seed has findings:\n{text}");
    assert_eq!(
        findings,
        db_counts(
            &app,
            "SELECT rule, severity, status, count(*) FROM findings GROUP BY 1, 2, 3",
            3
        )
    );
    let actions = samples(
        &scrape,
        "orgwarden_remediation_actions_total",
        &["action", "outcome"],
    );
    assert!(!actions.is_empty(), "{text}");
    assert_eq!(
        actions,
        db_counts(
            &app,
            "SELECT action, status, count(*) FROM actions GROUP BY 1, 2",
            2
        )
    );
    let objects = samples(&scrape, "orgwarden_snapshot_objects", &["kind"]);
    let last = app.store.latest_complete(None).unwrap().unwrap();
    let counts = last.counts.unwrap();
    assert_eq!(objects[&vec!["members".to_owned()]], counts.members as f64);
    assert_eq!(
        objects[&vec!["api_keys".to_owned()]],
        counts.api_keys as f64
    );
    assert_eq!(objects.len(), 5);

    let success = samples(
        &scrape,
        "orgwarden_last_success_timestamp_seconds",
        &["job"],
    );
    assert_eq!(
        success[&vec!["snapshot".to_owned()]],
        last.finished_at.unwrap().timestamp_millis() as f64 / 1000.0
    );
    assert_eq!(
        success[&vec!["audit".to_owned()]],
        app.now().timestamp() as f64,
        "the second audit ran at the clock's time"
    );
    let failures = samples(&scrape, "orgwarden_job_failures_total", &["job"]);
    assert_eq!(failures[&vec!["snapshot".to_owned()]], 0.0);

    let requests = samples(&scrape, "orgwarden_api_requests_total", &["status"]);
    let total: u64 = client.stats().requests;
    assert!(total > 0);
    assert_eq!(requests.values().sum::<f64>(), total as f64);
    assert!(requests.contains_key(&vec!["200".to_owned()]));

    let build = samples(&scrape, "orgwarden_build_info", &["version"]);
    assert_eq!(
        build,
        BTreeMap::from([(vec![env!("CARGO_PKG_VERSION").to_owned()], 1.0)])
    );
    // Counters are typed counters in the classic format (their family is named `_total`).
    assert!(
        text.contains("# TYPE orgwarden_remediation_actions_total counter"),
        "{text}"
    );
    assert!(matches!(
        scrape
            .samples
            .iter()
            .find(|s| s.metric == "orgwarden_job_failures_total")
            .unwrap()
            .value,
        Value::Counter(_)
    ));
}

#[tokio::test]
async fn healthz_flips_when_the_snapshot_goes_stale() {
    let mut app = TestApp::new("").await;
    let base = serve(&app, None).await;
    let health = || async {
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(health().await, 503, "no complete snapshot yet");
    app.snapshot().await;
    assert_eq!(health().await, 200);
    // Hourly audits: stale after two hours, as `status` says.
    app.advance(Span::minutes(119));
    assert_eq!(health().await, 200);
    assert!(app.status().healthy);
    app.advance(Span::minutes(2));
    assert_eq!(health().await, 503);
    assert!(!app.status().healthy);
    app.snapshot().await;
    assert_eq!(health().await, 200);
}

#[tokio::test]
async fn the_textfile_is_written_after_a_command_and_parses() {
    let mut app = TestApp::new("").await;
    let path = app.dir.path().join("textfile").join("orgwarden.prom");
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    app.reconfigure(&format!("[metrics]\ntextfile = \"{}\"\n", path.display()));
    app.cycle().await;
    orgwarden::exporter::after_command(&app.config, &app.store, None);
    let text = std::fs::read_to_string(&path).unwrap();
    let scrape = parse(&text);
    assert_eq!(
        samples(
            &scrape,
            "orgwarden_findings",
            &["rule", "severity", "status"]
        ),
        db_counts(
            &app,
            "SELECT rule, severity, status, count(*) FROM findings GROUP BY 1, 2, 3",
            3
        )
    );
    // Only the file itself is left in the directory: the temporary file was renamed over it.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("orgwarden.prom")]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn a_non_loopback_listen_address_needs_allow_remote() {
    let env = Environment { vars: vec![] };
    let refused = Config::from_toml("[metrics]\nlisten = \"0.0.0.0:9464\"\n", &env).unwrap_err();
    assert!(refused.to_string().contains("metrics.listen"), "{refused}");
    assert!(refused.to_string().contains("allow_remote"), "{refused}");
    let (allowed, _) = Config::from_toml(
        "[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\n",
        &env,
    )
    .unwrap();
    assert_eq!(
        allowed.metrics.listen,
        Some("0.0.0.0:9464".parse().unwrap())
    );
    let (local, _) = Config::from_toml("[metrics]\nlisten = \"[::1]:9464\"\n", &env).unwrap();
    assert!(local.metrics.listen.is_some());
    assert!(Config::from_toml("[metrics]\nlisten = \"nine\"\n", &env).is_err());
}
