//! Sending email over SMTP: one try at submitting an [`Email`] (what a service builds,
//! described in [`crate::request::email`]) to the address the SSRF guard checked.
//!
//! The engine's [`Transport`](crate::Transport) sends it under the same policy as an HTTP
//! request: the SSRF guard on the SMTP host (the connection goes to the address that was
//! checked), the rate limit if the service declares one, the request timeout, retries
//! with backoff on transient failures (`4xx` replies, timeouts, broken connections; a
//! `5xx` reply is final), the deadline, and under `lookout serve` one try per claim with
//! the durable schedule as the retry. Every error is redacted.
//!
//! Each send opens its own connection (no pool): events are rare enough that a pool
//! would mostly hold idle sockets, and a fresh connection never inherits a broken one.

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::report::{Outcome, user_agent};
use super::retry::Retry;
#[cfg(doc)]
use super::ssrf::Guard;
use super::tls;
use crate::redact::Redactor;
use crate::request::email::{Email, Security, header_mailbox, header_text};

/// One try at sending `email` through `address` (see [`Guard::resolve`]), within `timeout`:
/// how it ended, and whether another try could do better (a `4xx` reply or a connection
/// problem: yes; a `5xx` reply: no).
pub(crate) async fn try_once(
    email: &Email,
    address: IpAddr,
    timeout: Duration,
    delivery_id: &str,
    redactor: &Redactor,
) -> (Outcome, Retry) {
    match tokio::time::timeout(timeout, submit(email, address, timeout, delivery_id)).await {
        Ok(Ok(code)) => (Outcome::Delivered { status: code }, Retry::No),
        Ok(Err(refused)) => (
            Outcome::Failed {
                reason: redactor.redact(&refused.reason),
                status: refused.status,
            },
            refused.retry,
        ),
        Err(_) => (
            Outcome::Failed {
                reason: format!(
                    "timed out after {}",
                    crate::delivery::human_duration(timeout)
                ),
                status: None,
            },
            Retry::Yes { after: None },
        ),
    }
}

/// Why a try failed, with the SMTP code when the server gave one.
struct Refused {
    reason: String,
    status: Option<u16>,
    retry: Retry,
}

/// Submits the message; the server's final reply code.
async fn submit(
    email: &Email,
    address: IpAddr,
    timeout: Duration,
    delivery_id: &str,
) -> Result<u16, Refused> {
    let message = to_message(email, delivery_id).map_err(|reason| Refused {
        reason,
        status: None,
        retry: Retry::No,
    })?;
    let refused = |e: lettre::transport::smtp::Error| Refused {
        reason: describe_error(&e),
        status: e.status().map(u16::from),
        retry: retry_after_error(&e),
    };
    let transport = transport(email, address, timeout).map_err(refused)?;
    let response = transport.send(message).await.map_err(refused)?;
    Ok(u16::from(response.code()))
}

/// Whether a failed submission is worth another try: a `5xx` reply is final, and so is
/// a TLS or client-side problem (the configuration is wrong); a `4xx` reply ("try again
/// later"), a timeout or a broken connection may go better next time. lettre reports a
/// failed TLS handshake as a connection error, so the TLS failure is looked for in the
/// causes.
fn retry_after_error(err: &lettre::transport::smtp::Error) -> Retry {
    let final_failure =
        err.is_permanent() || err.is_tls() || err.is_client() || tls::failure_in(err).is_some();
    if final_failure {
        Retry::No
    } else {
        Retry::Yes { after: None }
    }
}

/// A lettre error as one sentence. Not its own text: lettre wraps its errors in one
/// another and each layer prints its kind again ("Connection error: Connection error:
/// …"), its client errors read "internal client error", and TLS failures come out as
/// Rust values. So: the kind in our words, then the innermost cause.
fn describe_error(err: &lettre::transport::smtp::Error) -> String {
    if let Some(tls) = tls::failure_in(err) {
        return tls::describe(tls);
    }
    let cause = innermost_cause(err);
    let text = match err.status() {
        Some(code) => format!("SMTP {code}: {}", cause.unwrap_or_default()),
        None if err.is_client() => client_problem(cause.as_deref().unwrap_or_default()),
        None if err.is_timeout() => "timed out".to_owned(),
        None if err.is_response() => format!(
            "the server's answer was not SMTP: {}",
            cause.unwrap_or_default()
        ),
        None => match cause {
            Some(cause) => format!("connection failed: {cause}"),
            None => "connection failed".to_owned(),
        },
    };
    text.replace(['\r', '\n'], " ")
}

/// The text of the last error in `err`'s chain of causes, if it has causes.
fn innermost_cause(err: &lettre::transport::smtp::Error) -> Option<String> {
    use std::error::Error as _;
    let mut cause = err.source();
    let mut innermost = None;
    while let Some(current) = cause {
        innermost = Some(current.to_string());
        cause = current.source();
    }
    innermost.filter(|text| !text.is_empty())
}

/// What lettre calls an "internal client error" is mostly the server lacking something
/// the configuration asks for; the one an operator meets most gets its own advice.
fn client_problem(lettre_says: &str) -> String {
    if lettre_says.contains("STARTTLS") {
        return "the server does not offer STARTTLS: use `security = \"tls\"` if it \
                speaks TLS from the start (usually port 465), or `security = \"none\"` \
                for a relay on a trusted network"
            .to_owned();
    }
    format!("the SMTP server cannot take this message: {lettre_says}")
}

/// The MIME message; its Message-ID comes from the delivery id, so a resent copy of
/// the same delivery can be recognised as one.
fn to_message(email: &Email, delivery_id: &str) -> Result<lettre::Message, String> {
    // Header fields come from event text and options: folded onto one line each.
    let mut builder = lettre::Message::builder()
        .from(header_mailbox(&email.from))
        .subject(header_text(&email.subject))
        .user_agent(user_agent())
        .message_id(Some(format!(
            "<{delivery_id}@{}>",
            email.from.email.domain()
        )));
    for to in &email.to {
        builder = builder.to(header_mailbox(to));
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        ))
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// A connection to `address`, where the TLS certificate must name the host as
/// configured (not the address).
fn transport(
    email: &Email,
    address: IpAddr,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
    let server = &email.server;
    let tls = match server.security {
        Security::None => Tls::None,
        Security::StartTls => Tls::Required(TlsParameters::new(server.host.clone())?),
        Security::Tls => Tls::Wrapper(TlsParameters::new(server.host.clone())?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.to_string())
        .port(server.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some((user, password)) = &server.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::email::SmtpServer;
    use lettre::message::Mailbox;

    fn email() -> Email {
        let server = SmtpServer::new("smtp.example.com", 587, Security::StartTls)
            .login("bot@example.com", "hunter2");
        Email::new(
            server,
            "Lookout <bot@example.com>",
            &["a@example.com", "B <b@example.com>"],
            "Hi",
        )
        .unwrap()
        .text("plain")
        .html("<p>html</p>")
    }

    #[test]
    fn preview_shows_headers_and_parts_but_no_password() {
        let mut redactor = Redactor::new();
        redactor.add("hunter2");
        let preview = email().preview(&redactor);
        assert_eq!(preview.method, "SMTP");
        assert_eq!(preview.url, "smtp://smtp.example.com:587?tls=required");
        assert_eq!(preview.headers[1].1, "a@example.com, B <b@example.com>");
        assert_eq!(preview.body["html"], "<p>html</p>");
        let shown = format!("{preview:?} {:?}", email());
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn bad_addresses_name_the_option() {
        let server = SmtpServer::new("h", 25, Security::None);
        let err = Email::new(server.clone(), "not an address", &["a@b.c"], "s").unwrap_err();
        assert!(err.to_string().starts_with("from:"), "{err}");
        let err = Email::new(server, "a@b.c", &[], "s").unwrap_err();
        assert!(err.to_string().starts_with("to:"), "{err}");
    }

    #[test]
    fn a_subject_cannot_add_headers() {
        let mut mail = email();
        mail.subject = "Hi\r\nBcc: evil@example.com".into();
        let text = String::from_utf8(to_message(&mail, "msg_abc").unwrap().formatted()).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        assert!(
            !head.lines().any(|l| l.starts_with("Bcc:")),
            "a header was injected:\n{head}"
        );
    }

    #[test]
    fn header_fields_are_folded_onto_one_line() {
        let mut mail = email();
        mail.subject = "Fix the\r\nlogin\u{2028}page\t\t now".into();
        mail.from = Mailbox::new(Some("Look\nout".into()), mail.from.email.clone());
        let text = String::from_utf8(to_message(&mail, "msg_abc").unwrap().formatted()).unwrap();
        assert!(
            text.contains("Subject: Fix the login page  now\r\n"),
            "{text}"
        );
        assert!(
            text.contains("From: \"Look out\" <bot@example.com>\r\n"),
            "{text}"
        );
        let preview = mail.preview(&Redactor::new());
        assert_eq!(preview.headers[2].1, "Fix the login page  now");
    }

    #[test]
    fn message_id_comes_from_the_delivery() {
        let message = to_message(&email(), "msg_abc").unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(text.contains("Message-ID: <msg_abc@example.com>"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
    }
}
