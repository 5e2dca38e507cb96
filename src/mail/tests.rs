use super::*;
use chrono::TimeZone;
use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::config::{Config, Environment};

fn config() -> MailConfig {
    Config::from_toml(
        "[mail]\nfrom = \"orgwarden <o@example.com>\"\nto = [\"Sécurité <sec@example.com>\", \"b@example.org\"]\ntransport = \"file\"\ndir = \"/nonexistent\"\n",
        &Environment::default(),
    )
    .unwrap()
    .0
    .mail
    .unwrap()
}

fn date() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 8, 0, 0).unwrap()
}

fn outgoing(subject: &str) -> Outgoing {
    Outgoing {
        subject: subject.to_owned(),
        text: "Bonjour — 3 findings\n".to_owned(),
        html: "<p>Bonjour — <b>3</b> findings</p>".to_owned(),
        attachments: vec![
            Attachment {
                filename: "findings.csv".to_owned(),
                content_type: "text/csv; charset=utf-8".to_owned(),
                bytes: b"id,email\r\n1,=cmd\r\n".to_vec(),
            },
            Attachment {
                filename: "blob.bin".to_owned(),
                content_type: "application/octet-stream".to_owned(),
                bytes: (0..=255u8).cycle().take(5000).collect(),
            },
        ],
    }
}

#[test]
fn message_is_mixed_with_alternative_then_attachments() {
    let raw = build_message(
        &config(),
        &outgoing("Weekly report"),
        "report-2025-W10",
        date(),
    )
    .unwrap();
    assert!(raw.is_ascii(), "8-bit content must be encoded");
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.subject(), Some("Weekly report"));
    assert_eq!(message.message_id(), Some("report-2025-W10@orgwarden"));
    assert_eq!(message.date().unwrap().to_rfc3339(), "2025-03-03T08:00:00Z");
    let root = message.root_part();
    let ctype = root.content_type().unwrap();
    assert_eq!(
        (ctype.ctype(), ctype.subtype()),
        ("multipart", Some("mixed"))
    );
    let children = root.sub_parts().unwrap();
    assert_eq!(children.len(), 3);
    let alternative = &message.parts[children[0] as usize];
    let ctype = alternative.content_type().unwrap();
    assert_eq!(
        (ctype.ctype(), ctype.subtype()),
        ("multipart", Some("alternative"))
    );
    let alternatives = alternative.sub_parts().unwrap();
    let kinds: Vec<_> = alternatives
        .iter()
        .map(|id| {
            let part = &message.parts[*id as usize];
            let ct = part.content_type().unwrap();
            (
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap()),
                ct.attribute("charset").map(str::to_lowercase),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("text/plain".to_owned(), Some("utf-8".to_owned())),
            ("text/html".to_owned(), Some("utf-8".to_owned()))
        ]
    );
    // Text lines end in CRLF on the wire.
    assert_eq!(message.body_text(0).unwrap(), "Bonjour — 3 findings\r\n");
    assert_eq!(
        message.body_html(0).unwrap(),
        "<p>Bonjour — <b>3</b> findings</p>"
    );
    let attachments: Vec<_> = message.attachments().collect();
    assert_eq!(attachments.len(), 2);
    for (part, want) in attachments.iter().zip(&outgoing("x").attachments) {
        assert_eq!(part.attachment_name(), Some(want.filename.as_str()));
        assert_eq!(part.content_transfer_encoding(), Some("base64"));
        assert_eq!(part.contents(), want.bytes.as_slice());
    }
    assert!(matches!(
        message.parts[children[2] as usize].body,
        PartType::Binary(_)
    ));
    let to = message.to().unwrap().as_list().unwrap();
    assert_eq!(to.len(), 2);
    assert_eq!(to[0].name.as_deref(), Some("Sécurité"));
    assert_eq!(to[0].address.as_deref(), Some("sec@example.com"));
    assert_eq!(
        message.from().unwrap().first().unwrap().address.as_deref(),
        Some("o@example.com")
    );
}

#[test]
fn the_same_input_renders_the_same_headers() {
    let a = build_message(&config(), &outgoing("s"), "r1", date()).unwrap();
    let b = build_message(&config(), &outgoing("s"), "r1", date()).unwrap();
    let headers = |raw: &[u8]| {
        let message = MessageParser::default().parse(raw).unwrap();
        (
            message.message_id().map(str::to_owned),
            message.date().map(|d| d.to_rfc3339()),
            message.subject().map(str::to_owned),
        )
    };
    assert_eq!(headers(&a), headers(&b));
}

#[test]
fn hostile_subjects_cannot_add_headers() {
    let long = "ü".repeat(5000); // 10 KB of UTF-8
    for subject in [
        "Report\r\nBcc: victim@example.com",
        "Report\nX-Injected: yes\r\n\r\nbody",
        "Report\u{202E}gnp.exe \u{200F}mark",
        "Report 🛡️🔥 émoji",
        "Report\u{0085}NEL\u{2028}LS\u{2029}PS\tTAB",
        long.as_str(),
    ] {
        let raw = build_message(&config(), &outgoing(subject), "hostile", date()).unwrap();
        let message = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(message.subject(), Some(clean_subject(subject).as_str()));
        let names: Vec<String> = message
            .headers()
            .iter()
            .map(|h| h.name.as_str().to_lowercase())
            .collect();
        for bad in ["bcc", "x-injected"] {
            assert!(!names.contains(&bad.to_owned()), "{subject:?}: {names:?}");
        }
        assert_eq!(
            names.iter().filter(|n| *n == "subject").count(),
            1,
            "{names:?}"
        );
        // Header lines stay within RFC 5322's 998 characters.
        let text = String::from_utf8(raw.clone()).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        assert!(head.split("\r\n").all(|line| line.len() <= 998));
        assert_eq!(message.attachments().count(), 2);
    }
    assert_eq!(clean_subject(" a\r\n\tb "), "a b");
    assert_eq!(clean_subject("a\u{202E}b"), "a\u{202E}b");
}

#[test]
fn message_ids_are_checked() {
    for bad in [
        "",
        "a b",
        "a@b",
        "<x>",
        "a\r\nb",
        ".a",
        "a..b",
        &"x".repeat(201),
    ] {
        assert!(
            build_message(&config(), &outgoing("s"), bad, date()).is_err(),
            "{bad:?}"
        );
    }
    assert_eq!(message_id_header("report-1"), "<report-1@orgwarden>");
}

#[test]
fn a_bad_attachment_type_names_the_file() {
    let mut message = outgoing("s");
    message.attachments[0].content_type = "not a type".to_owned();
    let error = build_message(&config(), &message, "r", date()).unwrap_err();
    assert!(format!("{error:#}").contains("findings.csv"), "{error:#}");
}

#[test]
fn backoff_doubles_from_five_minutes_up_to_six_hours() {
    let minutes: Vec<i64> = (1..=9).map(|n| backoff(n).num_minutes()).collect();
    assert_eq!(minutes, vec![5, 10, 20, 40, 80, 160, 320, 360, 360]);
    assert_eq!(backoff(0).num_minutes(), 5);
    assert_eq!(backoff(u32::MAX).num_hours(), 6);
}
