//! Mail: real SMTP servers (mailin-embedded) on loopback, plain, STARTTLS with a login, and TLS
//! from the start; a certificate authority made for each test; the outbox in a real SQLite file.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use mailin_embedded::{response, AuthMechanism, Handler, Response, Server, SslConfig};
use orgwarden::config::{Config, Environment, MailConfig};
use orgwarden::mail::{self, Attachment, MailError, Outgoing};
use orgwarden::store::{OutboxStatus, Store};

use crate::helpers::wall_now;

use crate::helpers::{orgwarden, run, write_config};

const PASSWORD: &str = "s3cret-smtp-pa55word";

// ---- A recording SMTP server ------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) from: String,
    pub(crate) to: Vec<String>,
    pub(crate) data: Vec<u8>,
}

#[derive(Clone, Default)]
struct Recorder {
    inbox: Arc<Mutex<Vec<Received>>>,
    login: Option<(String, String)>,
    /// Answers to `RCPT TO` other than 250, by address (shared, so a test can change them).
    rcpt_answers: Arc<Mutex<Vec<(String, u16, String)>>>,
    /// Refuse a message larger than this at the end of DATA with `552 5.3.4`.
    max_size: Option<usize>,
    mail_answer: Option<(u16, String)>,
    current: Option<Received>,
}

impl Handler for Recorder {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        match &self.mail_answer {
            Some((code, text)) => Response::custom(*code, text.clone()),
            None => response::OK,
        }
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let answers = self.rcpt_answers.lock().unwrap();
        match answers.iter().find(|(address, _, _)| address == to) {
            Some((_, code, text)) => Response::custom(*code, text.clone()),
            None => response::OK,
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Some(Received {
            from: from.to_owned(),
            to: to.to_vec(),
            data: Vec::new(),
        });
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(current) = &mut self.current {
            current.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(current) = self.current.take() {
            if self.max_size.is_some_and(|max| current.data.len() > max) {
                let mut refusal = Response::custom(
                    552,
                    "5.3.4 Message size exceeds fixed maximum message size".to_owned(),
                );
                // mailin stays in DATA after an error answer here (QUIT would be read as
                // data); a real server is ready for the next command, which this emulates.
                refusal.is_error = false;
                return refusal;
            }
            self.inbox.lock().unwrap().push(current);
        }
        response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.check_login(user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.check_login(user, password)
    }
}

impl Recorder {
    fn check_login(&self, user: &str, password: &str) -> Response {
        match &self.login {
            Some((u, p)) if u == user && p == password => response::AUTH_OK,
            _ => response::INVALID_CREDENTIALS,
        }
    }
}

pub(crate) struct Smtp {
    pub(crate) port: u16,
    inbox: Arc<Mutex<Vec<Received>>>,
    rcpt_answers: Arc<Mutex<Vec<(String, u16, String)>>>,
}

impl Smtp {
    pub(crate) fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().clone()
    }

    /// From now on, answer `RCPT TO:<address>` with `code text`.
    pub(crate) fn answer_rcpt(&self, address: &str, code: u16, text: &str) {
        let mut answers = self.rcpt_answers.lock().unwrap();
        answers.retain(|(a, _, _)| a != address);
        answers.push((address.to_owned(), code, text.to_owned()));
    }

    /// From now on, accept every recipient.
    pub(crate) fn accept_all(&self) {
        self.rcpt_answers.lock().unwrap().clear();
    }
}

#[derive(Default)]
pub(crate) struct ServerOptions<'a> {
    /// Offer STARTTLS with this certificate.
    pub(crate) starttls: Option<&'a Pki>,
    pub(crate) login: Option<(&'a str, &'a str)>,
    /// Refuse this recipient with `550 Mailbox unavailable`.
    pub(crate) reject: Option<&'a str>,
    /// Refuse messages larger than this (bytes) with `552 5.3.4`.
    pub(crate) max_size: Option<usize>,
    /// Answer every `MAIL FROM` with this instead of 250.
    pub(crate) mail_answer: Option<(u16, &'a str)>,
    /// Listen on this port instead of an ephemeral one.
    pub(crate) port: Option<u16>,
}

fn install_crypto() {
    // Both rustls back ends are compiled into the test binary; mailin-embedded needs a default.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Starts a mailin-embedded server on 127.0.0.1 in a thread (it lives until the tests end).
pub(crate) fn smtp_server(options: ServerOptions<'_>) -> Smtp {
    install_crypto();
    let listener = TcpListener::bind(("127.0.0.1", options.port.unwrap_or(0))).unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorder = Recorder {
        login: options.login.map(|(u, p)| (u.to_owned(), p.to_owned())),
        max_size: options.max_size,
        mail_answer: options
            .mail_answer
            .map(|(code, text)| (code, text.to_owned())),
        ..Recorder::default()
    };
    let inbox = recorder.inbox.clone();
    let rcpt_answers = recorder.rcpt_answers.clone();
    if let Some(address) = options.reject {
        rcpt_answers.lock().unwrap().push((
            address.to_owned(),
            550,
            "Mailbox unavailable".to_owned(),
        ));
    }
    let mut server = Server::new(recorder);
    server.with_name("mx.test").with_tcp_listener(listener);
    if let Some(pki) = options.starttls {
        server
            .with_ssl(SslConfig::SelfSigned {
                cert_path: pki.cert_pem.display().to_string(),
                key_path: pki.key_pem.display().to_string(),
            })
            .unwrap();
    }
    if options.login.is_some() {
        server.with_auth(AuthMechanism::Plain);
        server.with_auth(AuthMechanism::Login);
    }
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    Smtp {
        port,
        inbox,
        rcpt_answers,
    }
}

/// A port nothing listens on (yet).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- Certificates -------------------------------------------------------------------------------

/// A test CA and a server certificate it signed for localhost and 127.0.0.1.
pub(crate) struct Pki {
    _dir: tempfile::TempDir,
    pub(crate) ca_pem: PathBuf,
    pub(crate) cert_pem: PathBuf,
    pub(crate) key_pem: PathBuf,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

pub(crate) fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "orgwarden test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca_pem: write("ca.pem", ca_cert.pem()),
        cert_pem: write("cert.pem", cert.pem()),
        key_pem: write("key.pem", key.serialize_pem()),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
        _dir: dir,
    }
}

/// TLS from the first byte (as on port 465) in front of a plain server: mailin-embedded only
/// speaks STARTTLS, so a TLS terminator forwards the decrypted stream to it.
async fn implicit_tls_front(pki: &Pki, inner_port: u16) -> u16 {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(pki.cert_der.clone())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_der.clone())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                if let Ok(mut inner) =
                    tokio::net::TcpStream::connect(("127.0.0.1", inner_port)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut inner).await;
                }
            });
        }
    });
    port
}

// ---- Configuration and messages -------------------------------------------------------------------

fn mail_config(lines: &str) -> MailConfig {
    let text = format!(
        "[mail]\nfrom = \"orgwarden <orgwarden@example.com>\"\nto = [\"Security <sec@example.com>\", \"ops@example.org\"]\ntimeout = \"5s\"\n{lines}\n"
    );
    Config::from_toml(&text, &Environment::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .0
        .mail
        .unwrap()
}

fn plain(port: u16) -> MailConfig {
    mail_config(&format!(
        "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\""
    ))
}

fn tls_config(port: u16, tls: &str, pki: Option<&Pki>, login: Option<(&str, &str)>) -> MailConfig {
    let mut lines = format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\n");
    if let Some(pki) = pki {
        lines.push_str(&format!(
            "ca_file = {:?}\n",
            pki.ca_pem.display().to_string()
        ));
    }
    if let Some((user, password)) = login {
        lines.push_str(&format!(
            "username = \"{user}\"\npassword = \"{password}\"\n"
        ));
    }
    mail_config(&lines)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 8, 0, 0).unwrap()
}

fn report(subject: &str) -> Outgoing {
    Outgoing {
        subject: subject.to_owned(),
        text: "3 findings. Détails ci-joints.\n".to_owned(),
        html: "<p>3 findings. Détails <i>ci-joints</i>.</p>".to_owned(),
        attachments: vec![
            Attachment {
                filename: "findings.csv".to_owned(),
                content_type: "text/csv; charset=utf-8".to_owned(),
                bytes: "severity,email\r\nhigh,josé@example.com\r\n.\r\n"
                    .as_bytes()
                    .to_vec(),
            },
            Attachment {
                filename: "raw.bin".to_owned(),
                content_type: "application/octet-stream".to_owned(),
                bytes: (0..=255u8).cycle().take(70_000).collect(),
            },
        ],
        files_dir: None,
    }
}

/// Bytes that deflate cannot shrink (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn send(config: &MailConfig, outgoing: &Outgoing, id: &str) -> Result<(), MailError> {
    let raw = mail::build_message(config, outgoing, id, now()).unwrap();
    mail::deliver(config, &mail::envelope(config)?, &raw).await
}

fn open_store(dir: &Path) -> Store {
    Store::open_writer(&dir.join("orgwarden.db"), "mail test", wall_now()).unwrap()
}

// ---- Tests ----------------------------------------------------------------------------------------

#[tokio::test]
async fn plain_delivery_arrives_intact() {
    let server = smtp_server(ServerOptions::default());
    let config = plain(server.port);
    let hostile = "Weekly report\r\nBcc: attacker@evil.example\r\n\u{202E}🛡️ ü";
    send(&config, &report(hostile), "report-2025-W10")
        .await
        .unwrap();

    let received = server.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.from, "orgwarden@example.com");
    assert_eq!(got.to, vec!["sec@example.com", "ops@example.org"]);
    let message = MessageParser::default().parse(&got.data).unwrap();
    // Under the sender's domain, marked as automatic mail.
    assert_eq!(message.message_id(), Some("report-2025-W10@example.com"));
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    assert_eq!(
        message.subject(),
        Some("Weekly report Bcc: attacker@evil.example \u{202E}🛡️ ü")
    );
    assert!(message
        .headers()
        .iter()
        .all(|h| !h.name.as_str().eq_ignore_ascii_case("bcc")));
    let root = message.root_part().content_type().unwrap();
    assert_eq!(root.subtype(), Some("mixed"));
    let first = &message.parts[message.root_part().sub_parts().unwrap()[0] as usize];
    assert_eq!(first.content_type().unwrap().subtype(), Some("alternative"));
    assert_eq!(
        message.body_text(0).unwrap(),
        "3 findings. Détails ci-joints.\r\n"
    );
    assert_eq!(
        message.body_html(0).unwrap(),
        "<p>3 findings. Détails <i>ci-joints</i>.</p>"
    );
    let want = report("x").attachments;
    let got: Vec<_> = message.attachments().collect();
    assert_eq!(got.len(), want.len());
    for (part, want) in got.iter().zip(&want) {
        assert_eq!(part.attachment_name(), Some(want.filename.as_str()));
        assert_eq!(part.contents(), want.bytes.as_slice(), "{}", want.filename);
    }
}

#[tokio::test]
async fn starttls_with_login_and_a_private_ca() {
    let pki = pki();
    let server = smtp_server(ServerOptions {
        starttls: Some(&pki),
        login: Some(("orgwarden", PASSWORD)),
        ..ServerOptions::default()
    });
    let good = tls_config(
        server.port,
        "starttls",
        Some(&pki),
        Some(("orgwarden", PASSWORD)),
    );
    send(&good, &report("ok"), "starttls-1").await.unwrap();
    assert_eq!(server.received().len(), 1);

    // A wrong password: the hint names the settings, never the password.
    let wrong_password = "wrong-pa55word-xyz";
    let bad = tls_config(
        server.port,
        "starttls",
        Some(&pki),
        Some(("orgwarden", wrong_password)),
    );
    let error = send(&bad, &report("no"), "starttls-2").await.unwrap_err();
    assert!(matches!(error, MailError::AuthRefused { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("mail.username \"orgwarden\""), "{text}");
    assert!(text.contains("smtp_password"), "{text}");
    assert!(!error.is_permanent());
    for shown in [
        text.clone(),
        format!("{error:?}"),
        format!("{bad:?}"),
        format!("{good:?}"),
    ] {
        assert!(!shown.contains(wrong_password), "{shown}");
        assert!(!shown.contains(PASSWORD), "{shown}");
    }
    assert_eq!(server.received().len(), 1);

    // Through the outbox: the error is stored, the password is not (anywhere in the file).
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let (id, summary) =
        mail::enqueue_and_flush(&bad, &mut store, &report("no"), "starttls-3", now())
            .await
            .unwrap();
    assert_eq!((summary.attempted, summary.retrying), (1, 1));
    let record = store.outbox_get(id).unwrap().unwrap();
    assert_eq!(record.status, OutboxStatus::Pending);
    assert!(record.last_error.unwrap().contains("refused the login"));
    store.checkpoint().unwrap();
    drop(store);
    let bytes = std::fs::read(dir.path().join("orgwarden.db")).unwrap();
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains("refused the login"));
    assert!(!contains(wrong_password));

    // Without the CA the server is not trusted, and the hint says what to set.
    let untrusted = tls_config(server.port, "starttls", None, Some(("orgwarden", PASSWORD)));
    let error = send(&untrusted, &report("no"), "starttls-4")
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::Tls { .. }), "{error:?}");
    assert!(error.to_string().contains("mail.ca_file"), "{error}");
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn implicit_tls_delivers_and_mismatched_modes_get_port_hints() {
    let pki = pki();
    let inner = smtp_server(ServerOptions::default());
    let port = implicit_tls_front(&pki, inner.port).await;
    send(
        &tls_config(port, "tls", Some(&pki), None),
        &report("tls"),
        "tls-1",
    )
    .await
    .unwrap();
    let received = inner.received();
    assert_eq!(received.len(), 1);
    let message = MessageParser::default().parse(&received[0].data).unwrap();
    assert_eq!(message.subject(), Some("tls"));

    // tls = "tls" against a server that expects STARTTLS (or plain text).
    let plain_server = smtp_server(ServerOptions {
        starttls: Some(&pki),
        ..ServerOptions::default()
    });
    let error = send(
        &tls_config(plain_server.port, "tls", Some(&pki), None),
        &report("x"),
        "tls-2",
    )
    .await
    .unwrap_err();
    assert!(matches!(error, MailError::Tls { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("port 465 expects mail.tls = \"tls\""),
        "{error}"
    );

    // STARTTLS against a TLS-from-the-start port: the client waits for a greeting that never
    // comes, so a short timeout gives the same hint.
    let mut starttls = tls_config(port, "starttls", Some(&pki), None);
    if let orgwarden::config::MailTransport::Smtp { timeout, .. } = &mut starttls.transport {
        *timeout = Duration::from_millis(700);
    }
    let error = send(&starttls, &report("x"), "tls-3").await.unwrap_err();
    assert!(matches!(error, MailError::Timeout { .. }), "{error:?}");
    assert!(error.to_string().contains("port 465"), "{error}");
    assert_eq!(inner.received().len(), 1);
}

#[tokio::test]
async fn starttls_required_but_not_offered() {
    let pki = pki();
    let server = smtp_server(ServerOptions::default());
    let error = send(
        &tls_config(server.port, "starttls", Some(&pki), None),
        &report("x"),
        "nostarttls",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, MailError::StartTlsNotOffered { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("mail.tls = \"tls\""), "{error}");
    // Nothing went out in clear text.
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn server_down_then_up_delivers_exactly_once() {
    let port = free_port();
    let config = plain(port);
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());

    let (id, summary) =
        mail::enqueue_and_flush(&config, &mut store, &report("r"), "report-1", now())
            .await
            .unwrap();
    assert_eq!(
        (summary.attempted, summary.sent, summary.retrying),
        (1, 0, 1)
    );
    let record = store.outbox_get(id).unwrap().unwrap();
    assert_eq!(record.status, OutboxStatus::Pending);
    assert_eq!(record.attempts, 1);
    assert_eq!(
        record.next_attempt_at,
        Some(now() + chrono::Duration::minutes(5))
    );
    let error = record.last_error.unwrap();
    assert!(error.contains("connection refused"), "{error}");
    assert!(error.contains("mail.host and mail.port"), "{error}");

    // Not due yet: nothing is tried.
    let later = now() + chrono::Duration::minutes(4);
    assert_eq!(
        mail::flush_outbox(&config, &mut store, later)
            .await
            .unwrap()
            .attempted,
        0
    );
    // Due, still down: the wait doubles.
    let later = now() + chrono::Duration::minutes(5);
    let summary = mail::flush_outbox(&config, &mut store, later)
        .await
        .unwrap();
    assert_eq!((summary.attempted, summary.retrying), (1, 1));
    let record = store.outbox_get(id).unwrap().unwrap();
    assert_eq!(record.attempts, 2);
    assert_eq!(
        record.next_attempt_at,
        Some(later + chrono::Duration::minutes(10))
    );

    let server = smtp_server(ServerOptions {
        port: Some(port),
        ..ServerOptions::default()
    });
    let later = later + chrono::Duration::minutes(10);
    let summary = mail::flush_outbox(&config, &mut store, later)
        .await
        .unwrap();
    assert_eq!((summary.attempted, summary.sent), (1, 1));
    assert_eq!(server.received().len(), 1);
    let record = store.outbox_get(id).unwrap().unwrap();
    assert_eq!(record.status, OutboxStatus::Sent);
    assert_eq!(record.attempts, 3);
    assert_eq!(record.sent_at, Some(later));
    assert_eq!(record.next_attempt_at, None);

    // Again, and again with the same message enqueued a second time: nothing more is sent.
    let summary = mail::flush_outbox(&config, &mut store, later + chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(summary.attempted, 0);
    let (again, summary) =
        mail::enqueue_and_flush(&config, &mut store, &report("r"), "report-1", later)
            .await
            .unwrap();
    assert_eq!((again, summary.attempted), (id, 0));
    assert_eq!(
        mail::retry_outbox(&config, &mut store, later)
            .await
            .unwrap()
            .attempted,
        0
    );
    assert_eq!(server.received().len(), 1);
    let counts = store.outbox_counts().unwrap();
    assert_eq!((counts.pending, counts.sent, counts.failed), (0, 1, 0));
}

#[tokio::test]
async fn a_refused_recipient_is_recorded_and_the_others_get_the_message() {
    let server = smtp_server(ServerOptions {
        reject: Some("ops@example.org"),
        ..ServerOptions::default()
    });
    let config = plain(server.port);
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let (id, summary) =
        mail::enqueue_and_flush(&config, &mut store, &report("r"), "rejected", now())
            .await
            .unwrap();
    assert_eq!((summary.attempted, summary.sent, summary.failed), (1, 1, 0));
    // The refusal is named in what the outbox job reports.
    assert_eq!(summary.errors.len(), 1);
    assert!(
        summary.errors[0].contains("ops@example.org (550 Mailbox unavailable)"),
        "{:?}",
        summary.errors
    );
    let record = store.outbox_get(id).unwrap().unwrap();
    assert_eq!(record.status, OutboxStatus::Sent);
    assert_eq!(record.delivered_to, vec!["sec@example.com"]);
    assert_eq!(record.refused.len(), 1);
    assert_eq!(record.refused[0].address, "ops@example.org");
    assert_eq!(record.refused[0].reason, "550 Mailbox unavailable");
    // One transaction, for the accepted recipient only; the headers still name both.
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, vec!["sec@example.com"]);
    let message = MessageParser::default().parse(&received[0].data).unwrap();
    assert_eq!(message.to().unwrap().as_list().unwrap().len(), 2);
    // Settled: nothing is sent again, to anyone.
    assert_eq!(
        mail::retry_outbox(&config, &mut store, now() + chrono::Duration::days(1))
            .await
            .unwrap()
            .attempted,
        0
    );
    assert_eq!(server.received().len(), 1);

    // `orgwarden outbox` names the refused recipient, in the table and in JSON.
    drop(store);
    let config_path = write_config(dir.path(), "https://api.anthropic.com", "");
    let (code, out, err) = run(orgwarden(&config_path, &["outbox"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("refused"), "{out}");
    assert!(
        out.contains("ops@example.org (550 Mailbox unavailable)"),
        "{out}"
    );
    let (code, out, err) = run(orgwarden(&config_path, &["outbox", "--format", "json"])).await;
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["status"], "sent");
    assert_eq!(rows[0]["refused"][0]["address"], "ops@example.org");
    assert_eq!(rows[0]["delivered_to"][0], "sec@example.com");
    // `status` says when the last report went out.
    let (_, out, _) = run(orgwarden(&config_path, &["status"])).await;
    let line = out
        .lines()
        .find(|l| l.starts_with("last report sent: "))
        .unwrap_or_else(|| panic!("no last report line: {out}"));
    assert!(
        line.contains(&now().format("%Y-%m-%d").to_string()),
        "{out}"
    );
}

#[tokio::test]
async fn every_recipient_refused_fails_the_message_naming_them() {
    let server = smtp_server(ServerOptions {
        reject: Some("ops@example.org"),
        ..ServerOptions::default()
    });
    server.answer_rcpt("sec@example.com", 553, "5.1.1 No such user here");
    let config = plain(server.port);
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let (id, summary) =
        mail::enqueue_and_flush(&config, &mut store, &report("r"), "all-refused", now())
            .await
            .unwrap();
    assert_eq!((summary.attempted, summary.failed), (1, 1));
    let record = store.outbox_get(id).unwrap().unwrap();
    assert_eq!(record.status, OutboxStatus::Failed);
    assert!(record.delivered_to.is_empty());
    let error = record.last_error.unwrap();
    assert!(error.starts_with("every recipient was refused"), "{error}");
    assert!(
        error.contains("sec@example.com (553 5.1.1 No such user here)")
            && error.contains("ops@example.org (550 Mailbox unavailable)")
            && error.contains("check mail.to"),
        "{error}"
    );
    assert!(server.received().is_empty());
    assert_eq!(
        mail::retry_outbox(&config, &mut store, now() + chrono::Duration::days(1))
            .await
            .unwrap()
            .attempted,
        0
    );

    // Outside the outbox (send-test-email): an error naming the recipient.
    let error = send(&config, &report("x"), "direct").await.unwrap_err();
    assert!(
        matches!(error, MailError::RecipientsRejected { .. }),
        "{error:?}"
    );
    assert!(error.is_permanent());
    assert!(
        error
            .to_string()
            .contains("ops@example.org (550 Mailbox unavailable)"),
        "{error}"
    );
}

#[tokio::test]
async fn refusals_of_the_sender_and_of_the_login_are_told_apart() {
    // The server wants a login (530 to MAIL), and none is configured: a login problem, not
    // the sender.
    let server = smtp_server(ServerOptions {
        mail_answer: Some((530, "5.7.0 Authentication required")),
        ..ServerOptions::default()
    });
    let error = send(&plain(server.port), &report("x"), "nologin")
        .await
        .unwrap_err();
    assert!(matches!(error, MailError::AuthRequired { .. }), "{error:?}");
    assert!(!error.is_permanent());

    // The server refuses the sender: named, with mail.from, for good.
    let server = smtp_server(ServerOptions {
        mail_answer: Some((553, "5.7.1 Sender not allowed")),
        ..ServerOptions::default()
    });
    let error = send(&plain(server.port), &report("x"), "sender")
        .await
        .unwrap_err();
    assert!(
        matches!(error, MailError::SenderRejected { .. }),
        "{error:?}"
    );
    assert!(error.is_permanent());
    let text = error.to_string();
    assert!(
        text.contains("refused the sender orgwarden@example.com: 553 5.7.1 Sender not allowed")
            && text.contains("check mail.from"),
        "{text}"
    );
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_deferred_recipient_is_tried_again_alone() {
    let server = smtp_server(ServerOptions::default());
    server.answer_rcpt("ops@example.org", 450, "4.2.1 Mailbox busy, try later");
    let config = plain(server.port);
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let (id, summary) =
        mail::enqueue_and_flush(&config, &mut store, &report("r"), "deferred", now())
            .await
            .unwrap();
    assert_eq!((summary.attempted, summary.retrying), (1, 1));
    let record = store.outbox_get(id).unwrap().unwrap();
    assert_eq!(record.status, OutboxStatus::Pending);
    assert_eq!(record.delivered_to, vec!["sec@example.com"]);
    assert!(record
        .last_error
        .unwrap()
        .contains("ops@example.org (450 4.2.1 Mailbox busy, try later)"));
    assert_eq!(
        record.next_attempt_at,
        Some(now() + chrono::Duration::minutes(5))
    );

    server.accept_all();
    let later = now() + chrono::Duration::minutes(5);
    let summary = mail::flush_outbox(&config, &mut store, later)
        .await
        .unwrap();
    assert_eq!(summary.sent, 1, "{:?}", summary.errors);
    let record = store.outbox_get(id).unwrap().unwrap();
    assert_eq!(record.status, OutboxStatus::Sent);
    assert_eq!(record.last_error, None);
    assert_eq!(
        record.delivered_to,
        vec!["sec@example.com", "ops@example.org"]
    );
    // Each recipient got it exactly once.
    let received = server.received();
    let to: Vec<_> = received.iter().map(|r| r.to.clone()).collect();
    assert_eq!(to, vec![vec!["sec@example.com"], vec!["ops@example.org"]]);
}

#[tokio::test]
async fn a_size_refusal_is_reported_as_a_size_problem() {
    let server = smtp_server(ServerOptions {
        max_size: Some(50_000),
        ..ServerOptions::default()
    });
    let config = plain(server.port);
    let error = send(&config, &report("big"), "big-1").await.unwrap_err();
    assert!(matches!(error, MailError::TooLarge { .. }), "{error:?}");
    assert!(error.is_permanent());
    let text = error.to_string();
    assert!(
        text.contains("refused the message as too large (")
            && text.contains(" bytes; mail.max_message_bytes = 10000000)")
            && text.contains("552")
            && text.contains("5.3.4"),
        "{text}"
    );
    assert!(!text.contains("recipient"), "{text}");

    // Through the outbox: failed for good (the same bytes cannot pass), with that text.
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let (id, summary) =
        mail::enqueue_and_flush(&config, &mut store, &report("big"), "big-2", now())
            .await
            .unwrap();
    assert_eq!(summary.failed, 1);
    let record = store.outbox_get(id).unwrap().unwrap();
    assert_eq!(record.status, OutboxStatus::Failed);
    let error = record.last_error.unwrap();
    assert!(
        error.contains(&format!("too large ({} bytes;", record.size)),
        "{error}"
    );
    assert!(server.received().is_empty());

    // Within the server's limit (mail.max_message_bytes below it), the report goes out.
    let fitting = mail_config(&format!(
        "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nmax_message_bytes = 40000\nzip_over_bytes = 1000\n",
        server.port
    ));
    let mut big = report("big");
    big.attachments.push(Attachment {
        filename: "noise.bin".to_owned(),
        content_type: "application/octet-stream".to_owned(),
        bytes: noise(60_000),
    });
    big.files_dir = Some(dir.path().join("reports/run-3"));
    let (id, summary) = mail::enqueue_and_flush(&fitting, &mut store, &big, "big-3", now())
        .await
        .unwrap();
    assert_eq!(summary.sent, 1, "{:?}", summary.errors);
    assert!(store.outbox_get(id).unwrap().unwrap().size <= 40_000);
    let received = server.received();
    assert_eq!(received.len(), 1);
    let message = MessageParser::default().parse(&received[0].data).unwrap();
    assert_eq!(message.attachments().count(), 0);
    let text = message.body_text(0).unwrap();
    assert!(text.contains("are not attached"), "{text}");
    assert!(
        text.contains(&dir.path().join("reports/run-3").display().to_string()),
        "{text}"
    );
    assert!(message.body_html(0).unwrap().contains(&format!(
        "<code>{}</code>",
        dir.path().join("reports/run-3").display()
    )));
}

#[tokio::test]
async fn large_attachments_arrive_as_one_zip() {
    let server = smtp_server(ServerOptions::default());
    let config = mail_config(&format!(
        "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nzip_over_bytes = 50000\n",
        server.port
    ));
    let mut outgoing = report("zip");
    let row = "key_123,orphaned,josé@example.com,2025-03-03 08:00:00\r\n";
    outgoing.attachments.push(Attachment {
        filename: "api_keys.csv".to_owned(),
        content_type: "text/csv; charset=utf-8".to_owned(),
        bytes: row.repeat(5_000).into_bytes(),
    });
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let (_, summary) = mail::enqueue_and_flush(&config, &mut store, &outgoing, "zip-1", now())
        .await
        .unwrap();
    assert_eq!(summary.sent, 1, "{:?}", summary.errors);
    let received = server.received();
    let message = MessageParser::default().parse(&received[0].data).unwrap();
    let attachments: Vec<_> = message.attachments().collect();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].attachment_name(), Some("report.zip"));
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(attachments[0].contents().to_vec())).unwrap();
    assert_eq!(archive.len(), 3);
    for want in &outgoing.attachments {
        let mut file = archive.by_name(&want.filename).unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut got).unwrap();
        assert_eq!(got, want.bytes, "{}", want.filename);
    }
    // 300 KB of CSV travel as far less.
    assert!(
        received[0].data.len() < 150_000,
        "{}",
        received[0].data.len()
    );
    assert_eq!(
        message.body_text(0).unwrap(),
        "3 findings. Détails ci-joints.\r\n"
    );
}

#[tokio::test]
async fn file_transport_writes_a_parseable_eml() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail/out");
    let config = mail_config(&format!(
        "transport = \"file\"\ndir = {:?}",
        mail_dir.display().to_string()
    ));
    let mut store = open_store(dir.path());
    let (id, summary) =
        mail::enqueue_and_flush(&config, &mut store, &report("file"), "report-f", now())
            .await
            .unwrap();
    assert_eq!(summary.sent, 1, "{:?}", summary.errors);
    assert_eq!(
        store.outbox_get(id).unwrap().unwrap().status,
        OutboxStatus::Sent
    );
    let names: Vec<String> = std::fs::read_dir(&mail_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["report-f@example.com.eml"]);
    let bytes = std::fs::read(mail_dir.join(&names[0])).unwrap();
    let message = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(message.subject(), Some("file"));
    assert_eq!(message.attachments().count(), 2);
}

#[tokio::test]
async fn send_test_email_and_outbox_commands() {
    let server = smtp_server(ServerOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let mail_section = |port: u16| {
        format!("[mail]\nfrom = \"orgwarden@example.com\"\nto = [\"sec@example.com\"]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"5s\"\n")
    };
    let config = write_config(
        dir.path(),
        "https://api.anthropic.com",
        &mail_section(server.port),
    );
    let (code, out, err) = run(orgwarden(&config, &["send-test-email", "me@example.net"])).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("@example.com>"), "{out}");
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, vec!["me@example.net"]);

    // The server is down: exit 1 with the hint.
    let down = free_port();
    let config = write_config(dir.path(), "https://api.anthropic.com", &mail_section(down));
    let (code, _, err) = run(orgwarden(&config, &["send-test-email", "me@example.net"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("connection refused"), "{err}");

    // A message waits in the outbox; `outbox` lists it, `outbox --retry` delivers it now.
    {
        let mut store = open_store(dir.path());
        let mail_config = plain(down);
        mail::enqueue_and_flush(
            &mail_config,
            &mut store,
            &report("queued"),
            "queued-1",
            wall_now(),
        )
        .await
        .unwrap();
    }
    let (code, out, err) = run(orgwarden(&config, &["outbox", "--format", "json"])).await;
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["message_id"], "queued-1");
    assert_eq!(rows[0]["status"], "pending");
    assert_eq!(rows[0]["attempts"], 1);

    let late = smtp_server(ServerOptions {
        port: Some(down),
        ..ServerOptions::default()
    });
    let (code, out, err) = run(orgwarden(&config, &["outbox", "--retry"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 sent"), "{err}");
    assert!(out.contains("queued-1") && out.contains("sent"), "{out}");
    assert_eq!(late.received().len(), 1);
}
