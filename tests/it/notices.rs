//! Owner notices (`[alerts.owner_notice]`) through a real SMTP server: a departed member's key
//! in its grace period gets one notice mail to its owner naming the date it will be acted on,
//! none more on the next cycle, and none at all when owner notices are off.

use chrono::Duration as Span;
use mail_parser::MessageParser;

use crate::app::TestApp;
use crate::mail::{smtp_server, ServerOptions};

const OWNER: &str = "leaver0@departed.example";

fn config(port: u16, notice: &str) -> String {
    format!(
        "[remediation]\nmode = \"enforce\"\nmax_fraction = 1.0\nmax_actions_per_run = 1000\n\
         min_finding_age = \"24h\"\nmin_consecutive_snapshots = 1\n\n\
         [rules.departed_domains]\nremediate = true\ndeparted_domains = [\"departed.example\"]\n\n\
         [mail]\nfrom = \"orgwarden <orgwarden@example.com>\"\nto = [\"reports@example.com\"]\n\
         host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"5s\"\n\n\
         {notice}"
    )
}

/// A member of the departed domain, still in the organization, with an active key.
fn departed(app: &TestApp) {
    app.sim.with_state(|s| {
        let now = s.now();
        let user = s.add_user(OWNER, "Leaver", "user", now - Span::days(40));
        s.add_api_key(
            "leaver-key",
            None,
            Some(&user),
            "active",
            now - Span::days(30),
        );
    });
}

/// The text of every mail the server got for `to`.
fn mails_to(server: &crate::mail::Smtp, to: &str) -> Vec<(String, String)> {
    server
        .received()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t.contains(to)))
        .map(|m| {
            let parsed = MessageParser::default().parse(&m.data).unwrap();
            (
                parsed.subject().unwrap_or_default().to_owned(),
                parsed.body_text(0).unwrap_or_default().into_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_departed_members_key_in_its_grace_period_notices_its_owner_once() {
    let server = smtp_server(ServerOptions::default());
    let mut app = TestApp::new(&config(
        server.port,
        "[alerts.owner_notice]\nenabled = true\ncontact = \"ask security@example.com\"\n",
    ))
    .await;
    departed(&app);
    app.cycle().await;
    let first_seen = app.now();
    let mails = mails_to(&server, OWNER);
    assert_eq!(mails.len(), 1, "one notice to the key's owner: {mails:?}");
    let (subject, text) = &mails[0];
    let eligible = (first_seen + Span::hours(24))
        .format("%Y-%m-%d")
        .to_string();
    assert!(subject.contains("leaver-key"), "{subject}");
    assert!(
        text.contains(&eligible),
        "names the date {eligible}: {text}"
    );
    assert!(text.contains("deactivate the API key"), "{text}");
    assert!(text.contains("departed.example"), "the reason: {text}");
    assert!(
        text.contains("ask security@example.com"),
        "the contact: {text}"
    );
    assert!(!text.contains("dry run"), "{text}");

    let events = app.store.events(None, 10_000).unwrap();
    let sent: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "owner_notice.sent")
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].payload["recipient"], OWNER);

    app.advance(Span::hours(1));
    app.cycle().await;
    assert_eq!(
        mails_to(&server, OWNER).len(),
        1,
        "nothing more on the next cycle"
    );
}

#[tokio::test]
async fn no_notice_when_owner_notices_are_off() {
    let server = smtp_server(ServerOptions::default());
    let mut app = TestApp::new(&config(server.port, "")).await;
    departed(&app);
    app.cycle().await;
    app.advance(Span::hours(1));
    app.cycle().await;
    assert!(mails_to(&server, OWNER).is_empty());
}
