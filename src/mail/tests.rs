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
        files_dir: None,
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
    // Under the sender's domain, and marked automatic (RFC 3834).
    assert_eq!(message.message_id(), Some("report-2025-W10@example.com"));
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
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
    assert_eq!(
        message_id_header("report-1", "example.com"),
        "<report-1@example.com>"
    );
}

fn config_from(from: &str, extra: &str) -> MailConfig {
    Config::from_toml(
        &format!("[mail]\nfrom = {from:?}\nto = [\"a@example.com\"]\ntransport = \"file\"\ndir = \"/nonexistent\"\n{extra}"),
        &Environment::default(),
    )
    .unwrap()
    .0
    .mail
    .unwrap()
}

#[test]
fn message_id_domain_is_the_senders_in_ascii() {
    assert_eq!(message_id_domain(&config()), "example.com");
    assert_eq!(
        message_id_domain(&config_from("Warden <w@Mail.Example.ORG>", "")),
        "mail.example.org"
    );
    assert_eq!(
        message_id_domain(&config_from("w@bücher.example", "")),
        "xn--bcher-kva.example"
    );
    let raw = build_message(
        &config_from("w@bücher.example", ""),
        &outgoing("s"),
        "r-1",
        date(),
    )
    .unwrap();
    let message = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(message.message_id(), Some("r-1@xn--bcher-kva.example"));
}

/// Bytes that deflate cannot shrink (a simple xorshift stream).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn csv(name: &str, len: usize) -> Attachment {
    let row = "member,josé@example.com,admin\r\n";
    Attachment {
        filename: name.to_owned(),
        content_type: "text/csv; charset=utf-8".to_owned(),
        bytes: row.repeat(len / row.len() + 1).into_bytes()[..len].to_vec(),
    }
}

fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            assert_eq!(file.compression(), zip::CompressionMethod::Deflated);
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut out).unwrap();
            (file.name().unwrap().to_string(), out)
        })
        .collect()
}

#[test]
fn small_attachments_go_as_they_are() {
    let config = config_from("o@example.com", "zip_over_bytes = 20000\n");
    let rendered = render(&config, &outgoing("s"), "r", date()).unwrap();
    assert_eq!(rendered.fit, Fit::AsIs);
    let parsed = MessageParser::default().parse(&rendered.raw).unwrap();
    let names: Vec<_> = parsed
        .attachments()
        .map(|a| {
            (
                a.attachment_name().unwrap().to_owned(),
                a.contents().to_vec(),
            )
        })
        .collect();
    let want: Vec<_> = outgoing("s")
        .attachments
        .into_iter()
        .map(|a| (a.filename, a.bytes))
        .collect();
    assert_eq!(names, want);
}

#[test]
fn attachments_over_the_zip_threshold_go_as_one_zip() {
    let config = config_from("o@example.com", "zip_over_bytes = 100000\n");
    let mut message = outgoing("s");
    message.attachments = vec![csv("members.csv", 80_000), csv("../keys.csv", 30_000)];
    let rendered = render(&config, &message, "r", date()).unwrap();
    assert_eq!(rendered.fit, Fit::Zipped);
    let parsed = MessageParser::default().parse(&rendered.raw).unwrap();
    let attachments: Vec<_> = parsed.attachments().collect();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].attachment_name(), Some("report.zip"));
    let ctype = attachments[0].content_type().unwrap();
    assert_eq!(
        (ctype.ctype(), ctype.subtype()),
        ("application", Some("zip"))
    );
    let files = unzip(attachments[0].contents());
    assert_eq!(files.len(), 2);
    assert_eq!(
        files[0],
        (
            "members.csv".to_owned(),
            message.attachments[0].bytes.clone()
        )
    );
    // Flat: a name cannot climb out of the folder it is unpacked in.
    assert_eq!(
        files[1],
        (
            ".._keys.csv".to_owned(),
            message.attachments[1].bytes.clone()
        )
    );
    // Repetitive CSV shrinks a lot.
    assert!(rendered.raw.len() < 40_000, "{}", rendered.raw.len());
    // The bodies are untouched.
    assert_eq!(parsed.body_html(0).unwrap(), message.html);
    // Exactly at the threshold: not zipped.
    message.attachments = vec![csv("members.csv", 100_000)];
    assert_eq!(
        render(&config, &message, "r", date()).unwrap().fit,
        Fit::AsIs
    );
}

#[test]
fn a_message_still_too_large_goes_without_attachments_naming_their_folder() {
    let config = config_from(
        "o@example.com",
        "max_message_bytes = 50000\nzip_over_bytes = 10000\n",
    );
    let mut message = outgoing("s");
    message.html = "<html><body><p>Summary</p></body></html>".to_owned();
    message.attachments = vec![
        Attachment {
            filename: "a.bin".to_owned(),
            content_type: "application/octet-stream".to_owned(),
            bytes: noise(40_000, 7),
        },
        csv("members.csv", 20_000),
    ];
    message.files_dir = Some(PathBuf::from(
        "/var/lib/orgwarden/reports/20250303T080000Z-run-7 <&>",
    ));
    let rendered = render(&config, &message, "r", date()).unwrap();
    assert_eq!(rendered.fit, Fit::WithoutAttachments);
    assert!(rendered.raw.len() <= 50_000);
    let parsed = MessageParser::default().parse(&rendered.raw).unwrap();
    assert_eq!(parsed.attachments().count(), 0);
    let text = parsed.body_text(0).unwrap();
    assert!(text.starts_with("Bonjour — 3 findings"), "{text}");
    assert!(
        text.contains("The attachments (2 files, 60 KB) are not attached"),
        "{text}"
    );
    assert!(text.contains("mail.max_message_bytes (50 KB)"), "{text}");
    assert!(
        text.contains("\n/var/lib/orgwarden/reports/20250303T080000Z-run-7 <&>\r\n"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 78), "{text}");
    let html = parsed.body_html(0).unwrap();
    assert!(html.starts_with("<html><body><p>Summary</p><p "), "{html}");
    assert!(html.ends_with("</p></body></html>"), "{html}");
    assert!(
        html.contains(
            "<code>/var/lib/orgwarden/reports/20250303T080000Z-run-7 &lt;&amp;&gt;</code>"
        ),
        "{html}"
    );

    // Without a folder, the note says how to get the files.
    message.files_dir = None;
    let rendered = render(&config, &message, "r", date()).unwrap();
    let parsed = MessageParser::default().parse(&rendered.raw).unwrap();
    assert!(parsed
        .body_text(0)
        .unwrap()
        .contains("orgwarden report --out DIR"));
    let html = parsed.body_html(0).unwrap();
    assert!(html.ends_with("write them.</p></body></html>"), "{html}");
}

#[test]
fn a_benchmark_size_report_fits_the_default_limit() {
    // About 35 MB of CSV rows, each different (the size of a 50,000-key organization's files).
    let config = config_from("o@example.com", "");
    let rows = |n: usize, kind: &str| {
        let mut out = String::with_capacity(n * 90);
        for i in 0..n {
            out.push_str(&format!(
                "{kind}_{i:08x},user{i}@example.com,Person Number {i},2025-03-{:02} 08:{:02}:{:02},active\r\n",
                1 + i % 28,
                i % 60,
                (i * 7) % 60
            ));
        }
        out.into_bytes()
    };
    let mut message = outgoing("s");
    message.attachments = vec![
        Attachment {
            filename: "api_keys.csv".to_owned(),
            content_type: "text/csv; charset=utf-8".to_owned(),
            bytes: rows(250_000, "key"),
        },
        Attachment {
            filename: "members.csv".to_owned(),
            content_type: "text/csv; charset=utf-8".to_owned(),
            bytes: rows(150_000, "user"),
        },
    ];
    let total: usize = message.attachments.iter().map(|a| a.bytes.len()).sum();
    assert!(total > 30_000_000, "{total}");
    let rendered = render(&config, &message, "r", date()).unwrap();
    assert_eq!(rendered.fit, Fit::Zipped);
    assert!(
        rendered.raw.len() < 10_000_000,
        "{} bytes",
        rendered.raw.len()
    );
}

#[test]
fn settling_a_message_by_its_recipients() {
    let refusal = |address: &str| RefusedRecipient {
        address: address.to_owned(),
        reason: "550 Mailbox unavailable".to_owned(),
    };
    let a = vec!["a@x.example".to_owned()];
    // All accepted.
    assert_eq!(settle(&a, &[], &[]), (OutboxStatus::Sent, None));
    // One refused, one accepted: sent, the refusal named.
    let (status, error) = settle(&a, &[refusal("b@x.example")], &[]);
    assert_eq!(status, OutboxStatus::Sent);
    assert_eq!(
        error.as_deref(),
        Some("refused for good: b@x.example (550 Mailbox unavailable)")
    );
    // One deferred: pending, whatever else happened.
    let (status, error) = settle(&a, &[], &[refusal("c@x.example")]);
    assert_eq!(status, OutboxStatus::Pending);
    assert!(error
        .unwrap()
        .contains("deferred, tried again later: c@x.example"));
    // Everyone refused: failed, with the hint.
    let (status, error) = settle(&[], &[refusal("a@x.example"), refusal("b@x.example")], &[]);
    assert_eq!(status, OutboxStatus::Failed);
    let error = error.unwrap();
    assert!(
        error.starts_with("every recipient was refused (refused for good: a@x.example"),
        "{error}"
    );
    assert!(error.ends_with("check mail.to"), "{error}");
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
