//! Delivering one rendered message: SMTP through lettre, or an `.eml` file. Failures become a
//! [`MailError`] whose text tells a person what to check.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, Tls, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::{Executor as _, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{MailConfig, MailTransport, TlsMode, SMTP_PASSWORD_CREDENTIAL};
use crate::store::RefusedRecipient;

/// Why a message was not delivered, worded so that a person can act on it. Never contains the
/// SMTP password.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot connect to {server}: connection refused; is the mail server running, and are mail.host and mail.port right?")]
    ConnectionRefused { server: String },
    #[error("cannot reach {server}: {detail}; check mail.host and mail.port")]
    Unreachable { server: String, detail: String },
    #[error("TLS with {server} failed: {detail}; {hint}")]
    Tls {
        server: String,
        detail: String,
        hint: String,
    },
    #[error("{server} does not offer STARTTLS, which tls = \"starttls\" requires; if the server expects TLS from the start (usually port 465) set mail.tls = \"tls\"")]
    StartTlsNotOffered { server: String },
    #[error("{server} refused the login{}: {detail}; check mail.username and the password (systemd credential {SMTP_PASSWORD_CREDENTIAL}, mail.password_file or ORGWARDEN_SMTP_PASSWORD)", username.as_deref().map(|u| format!(" of mail.username {u:?}")).unwrap_or_default())]
    AuthRefused {
        server: String,
        username: Option<String>,
        detail: String,
    },
    #[error("{server} requires a login: set mail.username and a password (systemd credential {SMTP_PASSWORD_CREDENTIAL}, mail.password_file or ORGWARDEN_SMTP_PASSWORD): {detail}")]
    AuthRequired { server: String, detail: String },
    #[error("{server} offers no login method orgwarden supports (PLAIN, LOGIN){}", if *.encrypted { "" } else { "; many servers only offer one over TLS" })]
    AuthNotOffered { server: String, encrypted: bool },
    #[error("{server} refused the message for good: {detail}")]
    Rejected { server: String, detail: String },
    #[error("{server} refused the sender {sender}: {detail}; check mail.from (many servers accept only an address the login may send as)")]
    SenderRejected {
        server: String,
        sender: String,
        detail: String,
    },
    #[error("{server} refused {}: {}; check mail.to", if refused.len() == 1 { "the recipient" } else { "the recipients" }, list_refused(refused))]
    RecipientsRejected {
        server: String,
        refused: Vec<RefusedRecipient>,
    },
    #[error("the mail server {server} refused the message as too large ({size} bytes; mail.max_message_bytes = {max}): {detail}; set mail.max_message_bytes below the server's limit")]
    TooLarge {
        server: String,
        size: u64,
        max: u64,
        detail: String,
    },
    #[error("{server} answered with a temporary failure: {detail}; it will be tried again")]
    Transient { server: String, detail: String },
    #[error("no answer from {server} within {timeout_secs}s; is the host reachable (firewall?), and do mail.port and mail.tls match? {hint}")]
    Timeout {
        server: String,
        timeout_secs: u64,
        hint: String,
    },
    #[error("talking to {server} failed: {detail}")]
    Smtp { server: String, detail: String },
    #[error("cannot write the message into mail.dir {dir}: {detail}")]
    File { dir: String, detail: String },
    #[error("{0}")]
    Config(String),
}

impl MailError {
    /// True when sending the same message again cannot succeed (the server refused the message
    /// itself). Connection, TLS and login failures are not permanent: they are fixed in the
    /// configuration or on the server, after which the message goes out.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            MailError::Rejected { .. }
                | MailError::SenderRejected { .. }
                | MailError::RecipientsRejected { .. }
                | MailError::TooLarge { .. }
        )
    }
}

/// `a@example.com (550 no such user), b@example.org (...)`.
pub fn list_refused(refused: &[RefusedRecipient]) -> String {
    refused
        .iter()
        .map(|r| format!("{} ({})", r.address, r.reason))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the server did with each recipient of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The server took the message for these.
    pub accepted: Vec<String>,
    /// Refused for good (a 5xx answer to `RCPT`), with the answer.
    pub refused: Vec<RefusedRecipient>,
    /// Refused for now (a 4xx answer to `RCPT`), with the answer: to be tried again.
    pub deferred: Vec<RefusedRecipient>,
}

/// The SMTP envelope for the configured sender and recipients.
pub fn envelope(config: &MailConfig) -> Result<Envelope, MailError> {
    envelope_for(
        config.from.email.as_ref(),
        &config
            .to
            .iter()
            .map(|m| m.email.to_string())
            .collect::<Vec<_>>(),
    )
}

/// An envelope from address texts (as stored in the outbox).
pub fn envelope_for(from: &str, to: &[String]) -> Result<Envelope, MailError> {
    let parse = |text: &str| {
        text.parse::<lettre::Address>()
            .map_err(|e| MailError::Config(format!("{text:?} is not an email address: {e}")))
    };
    let recipients = to.iter().map(|t| parse(t)).collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(parse(from)?), recipients)
        .map_err(|e| MailError::Config(format!("invalid envelope: {e}")))
}

/// Delivers one rendered message with the configured transport to every envelope recipient,
/// and fails unless every one of them accepted it (`send-test-email`, tests). The outbox uses
/// [`deliver_each`], which keeps the recipients apart.
pub async fn deliver(
    config: &MailConfig,
    envelope: &Envelope,
    raw: &[u8],
) -> Result<(), MailError> {
    let delivery = deliver_each(config, envelope, raw).await?;
    let refused: Vec<RefusedRecipient> = delivery
        .refused
        .into_iter()
        .chain(delivery.deferred)
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(MailError::RecipientsRejected {
            server: server_name(config),
            refused,
        })
    }
}

fn server_name(config: &MailConfig) -> String {
    match &config.transport {
        MailTransport::Smtp { host, port, .. } => format!("{host}:{port}"),
        MailTransport::File { dir } => dir.display().to_string(),
    }
}

/// Delivers one rendered message in one SMTP transaction, recipient by recipient: a recipient
/// the server refuses does not stop the others. Returns which recipients were accepted, refused
/// for good or deferred; an error means nobody got the message (the connection, the login, the
/// sender, or the message itself was refused). Every recipient refused is not an error here.
pub async fn deliver_each(
    config: &MailConfig,
    envelope: &Envelope,
    raw: &[u8],
) -> Result<Delivery, MailError> {
    match &config.transport {
        MailTransport::File { dir } => {
            write_eml(dir, raw)?;
            Ok(Delivery {
                accepted: envelope.to().iter().map(|a| a.to_string()).collect(),
                ..Delivery::default()
            })
        }
        MailTransport::Smtp {
            host,
            port,
            tls,
            username,
            password,
            timeout,
            ca_file,
        } => {
            let server = format!("{host}:{port}");
            let tls_parameters = || -> Result<TlsParameters, MailError> {
                let mut builder = TlsParameters::builder(host.clone());
                if let Some(path) = ca_file {
                    let pem = std::fs::read(path).map_err(|e| {
                        MailError::Config(format!(
                            "mail.ca_file: cannot read {}: {e}",
                            path.display()
                        ))
                    })?;
                    let certificate = Certificate::from_pem(&pem).map_err(|e| {
                        MailError::Config(format!(
                            "mail.ca_file: {} is not a PEM certificate: {e}",
                            path.display()
                        ))
                    })?;
                    builder = builder.add_root_certificate(certificate);
                }
                builder.build_rustls().map_err(|e| MailError::Tls {
                    server: server.clone(),
                    detail: e.to_string(),
                    hint: "check mail.ca_file".to_owned(),
                })
            };
            let tls_setting = match tls {
                TlsMode::StartTls => Tls::Required(tls_parameters()?),
                TlsMode::Tls => Tls::Wrapper(tls_parameters()?),
                TlsMode::None => Tls::None,
            };
            let credentials = username.as_ref().map(|username| {
                let password = password
                    .as_ref()
                    .map(|p| p.expose_secret().to_owned())
                    .unwrap_or_default();
                Credentials::new(username.clone(), password)
            });
            let context = Context {
                server: &server,
                port: *port,
                tls: *tls,
                username: username.as_deref(),
                timeout: *timeout,
                size: raw.len() as u64,
                max: config.max_message_bytes,
            };
            // lettre's timeout bounds each exchange; this bounds the whole conversation.
            let overall = timeout.saturating_mul(4);
            let session = session(
                host,
                &tls_setting,
                credentials.as_ref(),
                envelope,
                raw,
                &context,
            );
            match tokio::time::timeout(overall, session).await {
                Ok(result) => result,
                Err(_) => Err(MailError::Timeout {
                    server: server.clone(),
                    timeout_secs: overall.as_secs(),
                    hint: port_hint(*port, *tls),
                }),
            }
        }
    }
}

/// One SMTP conversation: connect (and TLS), log in, `MAIL`, one `RCPT` per recipient (each
/// answer kept), then `DATA` if anyone was accepted.
async fn session(
    host: &str,
    tls: &Tls,
    credentials: Option<&Credentials>,
    envelope: &Envelope,
    raw: &[u8],
    context: &Context<'_>,
) -> Result<Delivery, MailError> {
    let mut conn = Tokio1Executor::connect(
        host,
        context.port,
        Some(context.timeout),
        &ClientId::default(),
        tls,
    )
    .await
    .map_err(|e| classify(&e, context))?;
    if let Some(credentials) = credentials {
        if let Err(error) = conn.auth(DEFAULT_MECHANISMS, credentials).await {
            abort(&mut conn, context).await;
            return Err(classify(&error, context));
        }
    }
    let mut options = Vec::new();
    let non_ascii_address = envelope
        .to()
        .iter()
        .chain(envelope.from())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii_address {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            abort(&mut conn, context).await;
            return Err(MailError::Smtp {
                server: context.server.to_owned(),
                detail: "an address is not ASCII, and the server does not offer SMTPUTF8"
                    .to_owned(),
            });
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !raw.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            abort(&mut conn, context).await;
            return Err(MailError::Smtp {
                server: context.server.to_owned(),
                detail: "the message is not ASCII, and the server does not offer 8BITMIME"
                    .to_owned(),
            });
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let sender = envelope.from().map(|a| a.to_string()).unwrap_or_default();
    if let Err(error) = conn
        .command(Mail::new(envelope.from().cloned(), options))
        .await
    {
        return Err(fail(&mut conn, &error, context, Stage::Mail { sender }).await);
    }
    let mut delivery = Delivery::default();
    for address in envelope.to() {
        match conn.command(Rcpt::new(address.clone(), vec![])).await {
            Ok(_) => delivery.accepted.push(address.to_string()),
            Err(error) if error.status().is_some() => {
                let refusal = RefusedRecipient {
                    address: address.to_string(),
                    reason: answer(&error),
                };
                if error.is_permanent() {
                    delivery.refused.push(refusal);
                } else {
                    delivery.deferred.push(refusal);
                }
            }
            Err(error) => return Err(fail(&mut conn, &error, context, Stage::Rcpt).await),
        }
    }
    if delivery.accepted.is_empty() {
        let _ = bounded(context, conn.command(Rset)).await;
        let _ = bounded(context, conn.command(Quit)).await;
        return Ok(delivery);
    }
    if let Err(error) = conn.command(Data).await {
        return Err(fail(&mut conn, &error, context, Stage::Data).await);
    }
    if let Err(error) = conn.message(raw).await {
        return Err(fail(&mut conn, &error, context, Stage::Data).await);
    }
    // The server has taken the message: a QUIT it does not answer must not turn that into a
    // failure (and a second copy).
    let _ = bounded(context, conn.command(Quit)).await;
    Ok(delivery)
}

/// Runs a closing exchange for at most the exchange timeout (5 s at most), ignoring the outcome.
async fn bounded<F: std::future::Future>(context: &Context<'_>, exchange: F) -> Option<F::Output> {
    tokio::time::timeout(context.timeout.min(Duration::from_secs(5)), exchange)
        .await
        .ok()
}

/// Ends a conversation that failed: QUIT politely, but a server that does not answer must not
/// hold the error back.
async fn abort(conn: &mut AsyncSmtpConnection, context: &Context<'_>) {
    if bounded(context, conn.abort()).await.is_none() {
        tracing::debug!(
            server = context.server,
            "no answer to QUIT; connection dropped"
        );
    }
}

/// Where in the transaction an answer came.
enum Stage {
    Mail { sender: String },
    Rcpt,
    Data,
}

/// Ends the conversation after `error` and says what it means at `stage`.
async fn fail(
    conn: &mut AsyncSmtpConnection,
    error: &lettre::transport::smtp::Error,
    context: &Context<'_>,
    stage: Stage,
) -> MailError {
    abort(conn, context).await;
    let server = context.server.to_owned();
    let detail = answer(error);
    if error.status().is_some() && is_size_refusal(error, &stage) {
        return MailError::TooLarge {
            server,
            size: context.size,
            max: context.max,
            detail,
        };
    }
    // A login the server wants (530 to MAIL) stays a login problem; any other refusal of MAIL
    // is about the sender.
    match (stage, classify(error, context)) {
        (Stage::Mail { sender }, MailError::Rejected { .. }) => MailError::SenderRejected {
            server,
            sender,
            detail,
        },
        (_, classified) => classified,
    }
}

/// The server's answer without lettre's wording around it: `550 no such user`.
fn answer(error: &lettre::transport::smtp::Error) -> String {
    let text = chain(error);
    match error.status() {
        Some(code) => {
            let code = code.to_string();
            // lettre says "permanent error (550): no such user".
            let message = text
                .split_once("): ")
                .map(|(_, rest)| rest)
                .unwrap_or(text.as_str());
            format!("{code} {message}")
        }
        None => text,
    }
}

/// A refusal because of the message's size: `552` to `MAIL` or `DATA` (to `RCPT` it means a full
/// mailbox), or an enhanced status `5.3.4` ("message too big for system") anywhere.
fn is_size_refusal(error: &lettre::transport::smtp::Error, stage: &Stage) -> bool {
    let text = chain(error).to_lowercase();
    let code_552 = error.status().is_some_and(|c| c.to_string() == "552");
    text.contains("5.3.4")
        || text.contains("message size exceeds")
        || (code_552 && !matches!(stage, Stage::Rcpt))
}

struct Context<'a> {
    server: &'a str,
    port: u16,
    tls: TlsMode,
    username: Option<&'a str>,
    timeout: Duration,
    /// The message's size and the configured limit, for a size refusal.
    size: u64,
    max: u64,
}

fn tls_name(tls: TlsMode) -> &'static str {
    match tls {
        TlsMode::StartTls => "starttls",
        TlsMode::Tls => "tls",
        TlsMode::None => "none",
    }
}

/// The usual pairing of ports and TLS modes, with what is configured now.
fn port_hint(port: u16, tls: TlsMode) -> String {
    format!(
        "port 465 expects mail.tls = \"tls\"; ports 587 and 25 expect mail.tls = \"starttls\" (configured: port {port}, tls = \"{}\")",
        tls_name(tls)
    )
}

/// The error and all its sources, as one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

fn io_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = inner.source();
    }
    None
}

fn classify(error: &lettre::transport::smtp::Error, context: &Context<'_>) -> MailError {
    let server = context.server.to_owned();
    let detail = chain(error);
    let lower = detail.to_lowercase();
    if let Some(code) = error.status() {
        let code_text = code.to_string();
        let auth_code = matches!(code_text.as_str(), "530" | "534" | "535" | "538" | "454")
            && (lower.contains("auth") || code_text == "535");
        if auth_code && context.username.is_none() {
            return MailError::AuthRequired { server, detail };
        }
        if auth_code {
            return MailError::AuthRefused {
                server,
                username: context.username.map(str::to_owned),
                detail,
            };
        }
        if error.is_permanent() {
            return MailError::Rejected { server, detail };
        }
        return MailError::Transient { server, detail };
    }
    if error.is_timeout() || io_kind(error) == Some(std::io::ErrorKind::TimedOut) {
        return MailError::Timeout {
            server,
            timeout_secs: context.timeout.as_secs().max(1),
            hint: port_hint(context.port, context.tls),
        };
    }
    if lower.contains("starttls is not supported") {
        return MailError::StartTlsNotOffered { server };
    }
    if lower.contains("no compatible authentication mechanism") {
        return MailError::AuthNotOffered {
            server,
            encrypted: context.tls != TlsMode::None,
        };
    }
    match io_kind(error) {
        Some(std::io::ErrorKind::ConnectionRefused) => {
            return MailError::ConnectionRefused { server }
        }
        Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof)
            if context.tls != TlsMode::None =>
        {
            return MailError::Tls {
                server,
                detail,
                hint: port_hint(context.port, context.tls),
            }
        }
        _ => {}
    }
    let certificate = lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("notvalidforname");
    if certificate {
        return MailError::Tls {
            server,
            detail,
            hint: "the server's certificate is not trusted: if an internal CA signed it, set mail.ca_file to that CA's PEM file; and mail.host must be a name on the certificate".to_owned(),
        };
    }
    let tls_failure = error.is_tls()
        || [
            "tls",
            "handshake",
            "corrupt message",
            "invalidcontenttype",
            "alert",
        ]
        .iter()
        .any(|needle| lower.contains(needle));
    if tls_failure && context.tls != TlsMode::None {
        return MailError::Tls {
            server,
            detail,
            hint: port_hint(context.port, context.tls),
        };
    }
    if lower.contains("resolve") || lower.contains("lookup") || lower.contains("dns") {
        return MailError::Unreachable { server, detail };
    }
    if matches!(
        io_kind(error),
        Some(
            std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::NetworkUnreachable
                | std::io::ErrorKind::AddrNotAvailable
        )
    ) {
        return MailError::Unreachable { server, detail };
    }
    MailError::Smtp { server, detail }
}

/// Writes `<dir>/<message-id>.eml` atomically (a temporary file renamed into place), creating
/// the directory. The same message written twice replaces itself.
fn write_eml(dir: &Path, raw: &[u8]) -> Result<(), MailError> {
    let fail = |detail: String| MailError::File {
        dir: dir.display().to_string(),
        detail,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    let name = format!("{}.eml", file_stem(raw));
    let mut file = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".eml")
        .tempfile_in(dir)
        .map_err(|e| fail(e.to_string()))?;
    file.write_all(raw).map_err(|e| fail(e.to_string()))?;
    file.as_file().sync_all().map_err(|e| fail(e.to_string()))?;
    file.persist(dir.join(&name))
        .map_err(|e| fail(e.error.to_string()))?;
    Ok(())
}

/// A safe file name from the message's Message-ID header (a hash of the message when there is
/// none).
fn file_stem(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let id = text
        .split("\r\n")
        .flat_map(|line| line.split('\n'))
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("message-id")
                .then(|| value.trim().trim_matches(['<', '>']).to_owned())
        });
    match id.filter(|id| !id.is_empty()) {
        Some(id) => id
            .chars()
            .take(200)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+') {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_owned(),
        // Every message orgwarden builds has a Message-ID; a hash of the bytes keeps this name
        // stable without reading the clock.
        None => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            raw.hash(&mut hasher);
            format!("message-{:016x}", hasher.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_come_from_the_message_id() {
        assert_eq!(
            file_stem(b"From: a@b\r\nMessage-ID: <report-2025-W10@orgwarden>\r\n\r\nbody"),
            "report-2025-W10@orgwarden"
        );
        assert_eq!(
            file_stem(b"message-id: <../../etc/passwd@x>\r\n\r\n"),
            "_.._etc_passwd@x"
        );
        // A Message-ID in the body is not a header.
        assert!(file_stem(b"From: a@b\r\n\r\nMessage-ID: <x@y>\r\n").starts_with("message-"));
    }

    #[test]
    fn only_refusals_of_the_message_are_permanent() {
        let rejected = MailError::Rejected {
            server: "s:25".into(),
            detail: "550 no such user".into(),
        };
        assert!(rejected.is_permanent());
        let auth = MailError::AuthRefused {
            server: "s:587".into(),
            username: Some("u".into()),
            detail: "535".into(),
        };
        assert!(!auth.is_permanent());
        assert!(auth.to_string().contains("mail.username \"u\""));
        assert!(auth.to_string().contains(SMTP_PASSWORD_CREDENTIAL));
    }

    #[test]
    fn port_hint_names_the_usual_pairs() {
        let hint = port_hint(587, TlsMode::Tls);
        assert!(
            hint.contains("port 465 expects mail.tls = \"tls\""),
            "{hint}"
        );
        assert!(
            hint.contains("configured: port 587, tls = \"tls\""),
            "{hint}"
        );
    }
}
