//! Property tests on hostile input: the Admin API client against a tiny responder over TCP that
//! answers anything (status, headers, body bytes), the configuration loader on mutated TOML and
//! the roster parser on arbitrary bytes. None may panic; every failure must be an error value.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orgwarden::admin_api::{AdminClient, ClientOptions};
use orgwarden::config::{Config, Environment};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use secrecy::SecretString;

/// One canned HTTP response, written byte for byte.
#[derive(Debug, Clone)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    length: Length,
}

#[derive(Debug, Clone, Copy)]
enum Length {
    Exact,
    /// No Content-Length: the body ends when the connection closes.
    Missing,
    /// Announces more than is sent: the body is cut short.
    TooLong,
}

impl Canned {
    fn bytes(&self) -> Vec<u8> {
        let mut out =
            format!("HTTP/1.1 {} Whatever\r\nconnection: close\r\n", self.status).into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        match self.length {
            Length::Exact => {
                out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes())
            }
            Length::Missing => {}
            Length::TooLong => out.extend_from_slice(
                format!("content-length: {}\r\n", self.body.len() + 7).as_bytes(),
            ),
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Answers every connection with the current canned response, then closes it.
async fn responder() -> (String, Arc<Mutex<Vec<u8>>>) {
    let response = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&response);
    let (url, _) = crate::helpers::loopback_server(move |_| shared.lock().unwrap().clone()).await;
    (url, response)
}

/// Text with multi-byte characters of every width, of about `chars` characters: the client cuts
/// bodies at 200 and messages at 300 characters, so lengths around those are the interesting ones.
fn wide_text(chars: usize, seed: u8) -> String {
    let alphabet = ['a', 'é', '€', '😀', '\u{202E}', '\n', '\u{1b}', '"', '\\'];
    (0..chars)
        .map(|i| alphabet[(i + seed as usize) % alphabet.len()])
        .collect()
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Any bytes a header line can carry (no CR/LF), obs-text and controls included.
        proptest::collection::vec(
            any::<u8>().prop_filter("no line breaks", |b| *b != b'\r' && *b != b'\n'),
            0..40
        ),
        Just(b"0".to_vec()),
        Just(b"0.001".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"NaN".to_vec()),
        Just(b"1e308".to_vec()),
        Just(b"99999999999999999999".to_vec()),
        Just(b"Wed, 21 Oct 2015 07:28:00 GMT".to_vec()),
        Just(b"Fri, 31 Dec 9999 23:59:59 GMT".to_vec()),
        Just("application/json; charset=utf-8".as_bytes().to_vec()),
        Just("text/html; charset=\u{e9}".as_bytes().to_vec()),
        Just(b"true".to_vec()),
        Just(b"false".to_vec()),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        // A valid organization, possibly cut at any byte (inside a multi-byte character too).
        (0usize..400, any::<u8>(), any::<bool>()).prop_map(|(cut, seed, whole)| {
            let json = serde_json::json!({"id": "org_1", "name": wide_text(60, seed), "type": "organization"});
            let bytes = serde_json::to_vec(&json).unwrap();
            if whole { bytes } else { bytes[..cut.min(bytes.len())].to_vec() }
        }),
        // An error envelope whose message is around the 300-character cut.
        (290usize..310, any::<u8>()).prop_map(|(n, seed)| {
            serde_json::to_vec(&serde_json::json!({
                "type": "error",
                "error": {"type": wide_text(5, seed), "message": wide_text(n, seed)},
                "request_id": wide_text(12, seed),
            }))
            .unwrap()
        }),
        // A non-JSON body around the 200-character cut, as raw UTF-8 or cut mid-character.
        (190usize..215, any::<u8>(), 0usize..4).prop_map(|(n, seed, chop)| {
            let bytes = wide_text(n, seed).into_bytes();
            bytes[..bytes.len().saturating_sub(chop)].to_vec()
        }),
    ]
}

fn canned() -> impl Strategy<Value = Canned> {
    let names = prop_oneof![
        Just("retry-after"),
        Just("retry-after-ms"),
        Just("content-type"),
        Just("x-should-retry"),
        Just("request-id"),
    ];
    (
        prop_oneof![
            100u16..1000,
            Just(200u16),
            Just(429u16),
            Just(529u16),
            Just(500u16),
            Just(404u16)
        ],
        proptest::collection::vec((names, header_value()), 0..5),
        body(),
        prop_oneof![
            Just(Length::Exact),
            Just(Length::Missing),
            Just(Length::TooLong)
        ],
    )
        .prop_map(|(status, headers, body, length)| Canned {
            status,
            headers,
            body,
            length,
        })
}

#[test]
fn the_client_survives_any_response() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (base_url, response) = runtime.block_on(responder());
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&canned(), |canned| {
            *response.lock().unwrap() = canned.bytes();
            // A fresh client each time: a 429 pauses every request of a client.
            let mut options = ClientOptions::new(base_url.parse().unwrap());
            options.max_retries = 1;
            options.backoff_base = Duration::from_millis(1);
            options.backoff_cap = Duration::from_millis(2);
            options.request_timeout = Duration::from_secs(2);
            // Bounds any retry-after wait: a wait past the deadline is not waited out.
            options.total_deadline = Duration::from_millis(150);
            let client = AdminClient::new(
                options,
                SecretString::from("sk-ant-admin01-fuzz".to_owned()),
            )
            .unwrap();
            let result = runtime.block_on(client.organization());
            match result {
                Ok(org) => {
                    prop_assert!(
                        (200..300).contains(&canned.status),
                        "a value from HTTP {}",
                        canned.status
                    );
                    prop_assert_eq!(org.id, "org_1");
                }
                Err(error) => {
                    let text = error.to_string();
                    prop_assert!(
                        !text.chars().any(|c| c.is_control() || c == '\u{202E}'),
                        "raw control or bidi character in {:?}",
                        text
                    );
                    prop_assert!(!text.contains("sk-ant-admin01-fuzz"));
                }
            }
            Ok(())
        })
        .unwrap();
}

/// A valid configuration (the shipped example with an inline key and a roster) to mutate.
fn base_config() -> String {
    let example = include_str!("../../config.toml.example");
    example.replacen("[api]\n", "[api]\nadmin_key = \"sk-ant-admin01-base\"\n", 1)
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine { line: usize },
    SwapValue { line: usize, value: String },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let fragments = prop_oneof![
        Just("\"".to_owned()),
        Just("[".to_owned()),
        Just("]]".to_owned()),
        Just("=".to_owned()),
        Just("\n[rules]\n".to_owned()),
        Just("é€😀".to_owned()),
        Just("\u{0}".to_owned()),
        Just("'''".to_owned()),
        Just("{ a = 1 }".to_owned()),
        "[ -~]{0,12}",
        any::<String>(),
    ];
    let values = prop_oneof![
        Just("-1".to_owned()),
        Just("1e400".to_owned()),
        Just("\"\"".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("\"9999999999999999999999d\"".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("\"0 0 0 30 2 *\"".to_owned()),
        Just("true".to_owned()),
        Just("\"é€😀\"".to_owned()),
        any::<String>().prop_map(|s| format!("{s:?}")),
    ];
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), fragments).prop_map(|(at, text)| Mutation::Insert { at, text }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        (any::<usize>(), values).prop_map(|(line, value)| Mutation::SwapValue { line, value }),
    ]
}

/// The byte index at or before `at` that is a character boundary of `text`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn mutate(mut text: String, mutation: &Mutation) -> String {
    match mutation {
        Mutation::Delete { at, len } => {
            let start = boundary(&text, *at);
            let end = boundary(&text, (start + len).min(text.len()));
            text.replace_range(start..end.max(start), "");
            text
        }
        Mutation::Insert { at, text: insert } => {
            let at = boundary(&text, *at);
            text.insert_str(at, insert);
            text
        }
        Mutation::DuplicateLine { line } => {
            let mut lines: Vec<&str> = text.lines().collect();
            let line = line % lines.len().max(1);
            if let Some(copy) = lines.get(line).copied() {
                lines.insert(line, copy);
            }
            lines.join("\n")
        }
        Mutation::SwapValue { line, value } => {
            let lines: Vec<&str> = text.lines().collect();
            let with_value: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains(" = "))
                .collect();
            let target = with_value[line % with_value.len()];
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| match (i == target, l.split_once(" = ")) {
                    (true, Some((key, _))) => format!("{key} = {value}"),
                    _ => (*l).to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

#[test]
fn the_config_loader_survives_mutated_toml_and_every_error_names_a_key_or_line() {
    let base = base_config();
    let env = Environment::default();
    assert!(
        Config::from_toml(&base, &env).is_ok(),
        "the base configuration is valid"
    );
    let strategy = (
        proptest::collection::vec(mutation(), 1..4),
        proptest::option::of(any::<String>()),
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&strategy, |(mutations, arbitrary)| {
            let text = match arbitrary {
                // Now and then, text with no relation to a configuration at all.
                Some(text) if mutations.len() == 1 => text,
                _ => mutations.iter().fold(base.clone(), mutate),
            };
            if let Err(error) = Config::from_toml(&text, &env) {
                prop_assert!(!error.problems.is_empty());
                for problem in &error.problems {
                    prop_assert!(
                        !problem.key.trim().is_empty(),
                        "a problem without a key: {:?}",
                        problem
                    );
                    if problem.key.starts_with('(') {
                        // Not a key (a syntax error): the message must say where.
                        prop_assert!(
                            problem.message.contains("line"),
                            "neither key nor line: {:?}",
                            problem
                        );
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_roster_parser_survives_arbitrary_bytes() {
    let header = prop_oneof![
        Just(b"email,last_day\n".to_vec()),
        Just(b"\xef\xbb\xbfEmail ; Last_Day\n".to_vec()),
        Just(b"email\n".to_vec()),
        Just(Vec::new()),
    ];
    let rows = proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            Just(b"a@example.com,2024-02-30\n".to_vec()),
            Just("\u{e9}@ex\u{e9}mple.com,\"2024-01-01\n".as_bytes().to_vec()),
            Just(b"\"unterminated,\n".to_vec()),
            Just(b",,,,,,\n".to_vec()),
            Just(b"b@example.com,99999-99-99,extra\n".to_vec()),
        ],
        0..8,
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&(header, rows), |(header, rows)| {
            let mut bytes = header;
            bytes.extend(rows.concat());
            // The loader refuses non-UTF-8 files before parsing; the parser sees text.
            let text = String::from_utf8_lossy(&bytes);
            if let Err(error) = orgwarden::policy::parse_roster(&text, "email", "last_day") {
                prop_assert!(error.line >= 1);
                let prefix = format!("line {}", error.line);
                prop_assert!(error.to_string().starts_with(&prefix), "{}", error);
            }
            Ok(())
        })
        .unwrap();
}
