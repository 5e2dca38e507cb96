//! Immediate alerts against real HTTP receivers (one axum server, a route per channel type):
//! payload shapes and the webhook signature, one message per cycle and none for a persisting
//! finding, a receiver down then up, Slack's 429 `retry-after`, and a digest beyond the limit.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::Duration as Span;
use orgwarden::jobs;
use serde_json::Value;

use crate::app::TestApp;

/// What the receivers got, and what they answer next.
#[derive(Default)]
struct Received {
    /// (route, headers, body)
    requests: Vec<(String, HeaderMap, Vec<u8>)>,
    /// Answers to give before the normal 200, per route: (status, retry-after).
    answers: Vec<(String, u16, Option<u64>)>,
}

type Shared = Arc<Mutex<Received>>;

async fn receive(
    route: &str,
    state: Shared,
    headers: HeaderMap,
    body: Vec<u8>,
) -> axum::response::Response {
    let mut r = state.lock().unwrap();
    r.requests.push((route.to_owned(), headers, body));
    if let Some(at) = r.answers.iter().position(|(rt, _, _)| rt == route) {
        let (_, status, retry) = r.answers.remove(at);
        let mut response = (StatusCode::from_u16(status).unwrap(), "busy").into_response();
        if let Some(secs) = retry {
            response
                .headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return response;
    }
    (StatusCode::OK, "ok").into_response()
}

/// Serves `/hook`, `/slack` and `/teams` on `listener`.
fn serve(listener: tokio::net::TcpListener, state: Shared) {
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                |State(s): State<Shared>, h: HeaderMap, b: axum::body::Bytes| async move {
                    receive("hook", s, h, b.to_vec()).await
                },
            ),
        )
        .route(
            "/slack",
            post(
                |State(s): State<Shared>, h: HeaderMap, b: axum::body::Bytes| async move {
                    receive("slack", s, h, b.to_vec()).await
                },
            ),
        )
        .route(
            "/teams",
            post(
                |State(s): State<Shared>, h: HeaderMap, b: axum::body::Bytes| async move {
                    receive("teams", s, h, b.to_vec()).await
                },
            ),
        )
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
}

async fn receivers() -> (Shared, u16) {
    let state = Shared::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    serve(listener, state.clone());
    (state, port)
}

fn channels(port: u16, hook_port: u16, extra: &str) -> String {
    format!(
        "[rules.departed_domains]\ndeparted_domains = [\"departed.example\"]\n\n\
         [alerts]\n{extra}\n\
         [[alerts.channels]]\nname = \"siem\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\nsecret = \"s3cret\"\n\
         [[alerts.channels]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"http://127.0.0.1:{port}/slack\"\n\
         [[alerts.channels]]\nname = \"ops\"\ntype = \"teams\"\nurl = \"http://127.0.0.1:{port}/teams\"\n"
    )
}

/// Adds `n` members of the departed domain, each with an active key.
fn departed(app: &TestApp, n: usize) {
    app.sim.with_state(|s| {
        let now = s.now();
        for i in 0..n {
            let user = s.add_user(
                &format!("leaver{i}@departed.example"),
                "Leaver",
                "user",
                now - Span::days(40),
            );
            s.add_api_key(
                &format!("leaver-key-{i}"),
                None,
                Some(&user),
                "active",
                now - Span::days(30),
            );
        }
    });
}

fn requests(state: &Shared, route: &str) -> Vec<(HeaderMap, Value)> {
    state
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|(r, _, _)| r == route)
        .map(|(_, h, b)| (h.clone(), serde_json::from_slice(b).unwrap()))
        .collect()
}

fn body_bytes(state: &Shared, route: &str) -> Vec<Vec<u8>> {
    state
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|(r, _, _)| r == route)
        .map(|(_, _, b)| b.clone())
        .collect()
}

async fn outbox(app: &mut TestApp) {
    jobs::outbox_job(&mut app.ctx()).await.expect("outbox job");
}

#[tokio::test]
async fn a_departed_members_key_alerts_each_channel_once_and_not_again() {
    let (state, port) = receivers().await;
    let mut app = TestApp::new(&channels(port, port, "")).await;
    app.cycle().await;
    state.lock().unwrap().requests.clear();

    departed(&app, 1);
    app.advance(Span::hours(1));
    app.cycle().await;

    let hooks = requests(&state, "hook");
    assert_eq!(hooks.len(), 1, "one webhook message");
    let (headers, hook) = &hooks[0];
    assert_eq!(hook["version"], 1);
    assert_eq!(hook["event"], "finding");
    assert!(!hook["organization"]["id"].as_str().unwrap().is_empty());
    let findings = hook["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    assert!(findings
        .iter()
        .all(|f| f["subject"].as_str().unwrap().contains("leaver0")
            || f["evidence"].as_str().unwrap().contains("departed.example")));
    // The same field names as `audit --format json`.
    for key in [
        "rule",
        "severity",
        "subject_kind",
        "subject_id",
        "subject",
        "evidence",
        "action",
        "status",
        "first_seen",
        "controls",
    ] {
        assert!(
            findings[0].get(key).is_some(),
            "findings carry {key}: {}",
            findings[0]
        );
    }
    // The signature: HMAC-SHA256 of "<timestamp>.<body>" with the channel's secret.
    let raw = &body_bytes(&state, "hook")[0];
    let timestamp: i64 = headers["x-orgwarden-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(timestamp, app.now().timestamp());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(raw);
    let hex: String = ring::hmac::sign(&key, &signed)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        headers["x-orgwarden-signature"].to_str().unwrap(),
        format!("sha256={hex}")
    );

    let slack = requests(&state, "slack");
    assert_eq!(slack.len(), 1, "one Slack message");
    let blocks = slack[0].1["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(slack[0].1["text"].as_str().unwrap().len() > 5);
    assert!(blocks[1..]
        .iter()
        .any(|b| b.to_string().contains("departed.example")));

    let teams = requests(&state, "teams");
    assert_eq!(teams.len(), 1, "one Teams message");
    let card = &teams[0].1["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert!(card["content"]["body"]
        .to_string()
        .contains("departed.example"));
    assert!(
        teams[0].0.get("x-orgwarden-signature").is_none(),
        "only webhooks are signed"
    );

    // The finding persists: the next cycles alert nothing.
    for _ in 0..2 {
        app.advance(Span::hours(1));
        app.cycle().await;
    }
    assert_eq!(
        state.lock().unwrap().requests.len(),
        3,
        "a persisting finding alerts once"
    );
    assert!(app.status().pending_alerts.is_empty());
}

#[tokio::test]
async fn a_receiver_down_then_up_gets_each_alert_once_and_slacks_retry_after_is_honoured() {
    let (state, port) = receivers().await;
    // The webhook's port: bound, then closed, so the receiver is down.
    let hook_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_port = hook_listener.local_addr().unwrap().port();
    drop(hook_listener);
    let mut app = TestApp::new(&channels(port, hook_port, "")).await;
    state
        .lock()
        .unwrap()
        .answers
        .push(("slack".into(), 429, Some(600)));
    departed(&app, 1);
    app.cycle().await;

    let status = app.status();
    let pending: Vec<&str> = status
        .pending_alerts
        .iter()
        .map(|p| p.channel.as_str())
        .collect();
    assert_eq!(
        pending,
        ["chat", "siem"],
        "the webhook (down) and Slack (429) wait"
    );
    assert_eq!(requests(&state, "slack").len(), 1);
    assert_eq!(requests(&state, "teams").len(), 1);

    // Five minutes on: the webhook is still down; Slack asked for ten minutes, so no retry yet.
    app.advance(Span::minutes(5));
    outbox(&mut app).await;
    assert_eq!(
        requests(&state, "slack").len(),
        1,
        "retry-after is honoured"
    );

    // The receiver comes up on its port; after Slack's ten minutes both deliver, once.
    let hook_listener = tokio::net::TcpListener::bind(("127.0.0.1", hook_port))
        .await
        .unwrap();
    serve(hook_listener, state.clone());
    app.advance(Span::minutes(6));
    outbox(&mut app).await;
    app.advance(Span::hours(2));
    outbox(&mut app).await;
    app.cycle().await;
    assert_eq!(
        requests(&state, "hook").len(),
        1,
        "the webhook got its alert once"
    );
    assert_eq!(
        requests(&state, "slack").len(),
        2,
        "Slack: the 429, then the delivery"
    );
    assert_eq!(requests(&state, "teams").len(), 1);
    let ids: Vec<String> = requests(&state, "slack")
        .iter()
        .map(|(h, _)| h["x-orgwarden-delivery"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids[0], ids[1], "a retry carries the same delivery id");
    assert!(app.status().pending_alerts.is_empty());
    let (pending, sent, failed) = app.store.alert_counts("siem").unwrap();
    assert_eq!((pending, failed), (0, 0));
    assert!(sent >= 1);
}

#[tokio::test]
async fn more_alerts_than_max_per_message_go_out_as_one_digest() {
    let (state, port) = receivers().await;
    let mut app = TestApp::new(&channels(port, port, "max_per_message = 2")).await;
    app.cycle().await;
    state.lock().unwrap().requests.clear();
    departed(&app, 3);
    app.advance(Span::hours(1));
    app.cycle().await;

    let hooks = requests(&state, "hook");
    assert_eq!(hooks.len(), 1, "one digest");
    let hook = &hooks[0].1;
    assert_eq!(hook["event"], "digest");
    assert_eq!(hook["digest"], true);
    let n = hook["alerts"].as_array().unwrap().len();
    assert!(n > 2, "every alert is in the webhook's digest: {n}");
    let slack = requests(&state, "slack");
    assert_eq!(slack.len(), 1);
    let blocks = slack[0].1["blocks"].as_array().unwrap();
    assert_eq!(
        blocks.len(),
        1 + 2 + 1,
        "a header, the first two, and the rest counted"
    );
    assert!(blocks[3]
        .to_string()
        .contains(&format!("and {} more", n - 2)));
}

#[tokio::test]
async fn an_email_channel_mails_its_own_recipients_once_through_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = TestApp::new(&format!(
        "[rules.departed_domains]\ndeparted_domains = [\"departed.example\"]\n\n\
         [mail]\nfrom = \"orgwarden <orgwarden@example.com>\"\nto = [\"reports@example.com\"]\n\
         transport = \"file\"\ndir = \"{}\"\n\n\
         [alerts]\n[[alerts.channels]]\nname = \"secops\"\ntype = \"email\"\nto = [\"secops@example.com\"]\n",
        dir.path().display()
    ))
    .await;
    departed(&app, 1);
    app.cycle().await;
    app.advance(Span::hours(1));
    app.cycle().await;
    let mails: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(mails.len(), 1, "one alert mail across two cycles");
    assert!(mails[0].contains("To: secops@example.com"), "{}", mails[0]);
    assert!(!mails[0].contains("reports@example.com"));
    assert!(mails[0].contains("Subject: [orgwarden]"));
    assert!(mails[0].contains("departed.example"));
}
