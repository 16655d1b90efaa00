//! Email over SMTP: the one way out that is not HTTP.
//!
//! A service describes the message as an [`Email`] (no I/O, like an
//! [`HttpRequest`](crate::HttpRequest)); the engine's [`Transport`](crate::Transport)
//! sends it under the same policy as an HTTP request: the SSRF guard on the SMTP host
//! (the connection goes to the address that was checked), the rate limit if the service
//! declares one, the request timeout, retries with backoff on transient failures (`4xx`
//! replies, timeouts, broken connections; a `5xx` reply is final), the deadline, and
//! under `lookout serve` one try per claim with the durable schedule as the retry. Every
//! error is redacted. `--dry-run` and the snapshots show it through [`Email::preview`],
//! in the same shape as an HTTP request.
//!
//! Each send opens its own connection (no pool): events are rare enough that a pool
//! would mostly hold idle sockets, and a fresh connection never inherits a broken one.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::json;

use crate::delivery::retry::Retry;
#[cfg(doc)]
use crate::delivery::ssrf::Guard;
use crate::delivery::{Outcome, user_agent};
use crate::redact::Redactor;
use crate::request::RequestPreview;
use crate::service::BuildError;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which must succeed (usually port 587).
    StartTls,
    /// TLS from the first byte, "SMTPS" (usually port 465).
    Tls,
    /// No encryption at all: only for a relay on the same machine or network.
    None,
}

impl Security {
    /// The words the `security` option takes.
    pub const CHOICES: &'static [&'static str] = &["starttls", "tls", "none"];

    pub fn parse(word: &str) -> Option<Security> {
        match word {
            "starttls" => Some(Security::StartTls),
            "tls" => Some(Security::Tls),
            "none" => Some(Security::None),
            _ => None,
        }
    }
}

/// Where and how to submit mail.
#[derive(Clone)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// `(username, password)` when the server wants AUTH.
    credentials: Option<(String, String)>,
}

impl SmtpServer {
    pub fn new(host: impl Into<String>, port: u16, security: Security) -> SmtpServer {
        SmtpServer {
            host: host.into(),
            port,
            security,
            credentials: None,
        }
    }

    /// Logs in with AUTH PLAIN or LOGIN, whichever the server offers.
    pub fn login(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((username.into(), password.into()));
        self
    }

    /// The server as a URL, in lettre's convention: `smtps://host:465` for TLS,
    /// `smtp://host:587?tls=required` for STARTTLS, `smtp://host:25` for none.
    pub fn url(&self) -> String {
        let (scheme, query) = match self.security {
            Security::Tls => ("smtps", ""),
            Security::StartTls => ("smtp", "?tls=required"),
            Security::None => ("smtp", ""),
        };
        format!("{scheme}://{}:{}{query}", self.host, self.port)
    }
}

impl fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.credentials.as_ref().map(|(user, _)| user.as_str());
        write!(f, "SmtpServer({}, user: {user:?})", self.url())
    }
}

/// One email a service wants sent: a text part and an HTML part of the same message.
#[derive(Debug, Clone)]
pub struct Email {
    pub server: SmtpServer,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Email {
    /// Checks the addresses (`Name <user@example.com>` or a bare address); `from` and
    /// `to` name the options in the error.
    pub fn new(
        server: SmtpServer,
        from: &str,
        to: &[&str],
        subject: impl Into<String>,
    ) -> Result<Email, BuildError> {
        let mailbox = |option: &str, text: &str| {
            text.trim().parse::<Mailbox>().map_err(|e| {
                BuildError::Invalid(format!("{option}: `{text}` is not an address ({e})"))
            })
        };
        if to.is_empty() {
            return Err(BuildError::Invalid("to: no recipient".into()));
        }
        Ok(Email {
            server,
            from: mailbox("from", from)?,
            to: to
                .iter()
                .map(|t| mailbox("to", t))
                .collect::<Result<_, _>>()?,
            subject: subject.into(),
            text: String::new(),
            html: String::new(),
        })
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    pub fn html(mut self, html: impl Into<String>) -> Self {
        self.html = html.into();
        self
    }

    /// The email as `--dry-run` and the snapshots show it, secrets redacted: method
    /// `SMTP`, the server as a URL, the main headers, and both parts as the body.
    pub fn preview(&self, redactor: &Redactor) -> RequestPreview {
        let to: Vec<String> = self.to.iter().map(ToString::to_string).collect();
        let headers = [
            ("from", self.from.to_string()),
            ("to", to.join(", ")),
            ("subject", self.subject.clone()),
        ];
        RequestPreview {
            method: "SMTP",
            url: redactor.redact(&self.server.url()),
            headers: headers
                .into_iter()
                .map(|(name, value)| (name.to_owned(), redactor.redact(&value)))
                .collect(),
            body: redactor.redact_json(&json!({"text": self.text, "html": self.html})),
        }
    }

    /// The MIME message; its Message-ID comes from the delivery id, so a resent copy of
    /// the same delivery can be recognised as one.
    fn to_message(&self, delivery_id: &str) -> Result<lettre::Message, String> {
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(self.subject.clone())
            .user_agent(user_agent())
            .message_id(Some(format!(
                "<{delivery_id}@{}>",
                self.from.email.domain()
            )));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                self.text.clone(),
                self.html.clone(),
            ))
            .map_err(|e| format!("cannot build the message: {e}"))
    }

    /// A connection to `address`, where the TLS certificate must name the host as
    /// configured (not the address).
    fn transport(
        &self,
        address: IpAddr,
        timeout: Duration,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
        let server = &self.server;
        let tls = match server.security {
            Security::None => Tls::None,
            Security::StartTls => Tls::Required(TlsParameters::new(server.host.clone())?),
            Security::Tls => Tls::Wrapper(TlsParameters::new(server.host.clone())?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.to_string())
                .port(server.port)
                .tls(tls)
                .timeout(Some(timeout));
        if let Some((user, password)) = &server.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(builder.build())
    }
}

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
    let message = email.to_message(delivery_id).map_err(|reason| Refused {
        reason,
        status: None,
        retry: Retry::No,
    })?;
    let refused = |e: lettre::transport::smtp::Error| Refused {
        reason: describe_error(&e),
        status: e.status().map(u16::from),
        retry: retry_after_error(&e),
    };
    let transport = email.transport(address, timeout).map_err(refused)?;
    let response = transport.send(message).await.map_err(refused)?;
    Ok(u16::from(response.code()))
}

/// Whether a failed submission is worth another try: a `5xx` reply is final, and so is
/// a TLS or client-side problem (the configuration is wrong); a `4xx` reply ("try again
/// later"), a timeout or a broken connection may go better next time.
fn retry_after_error(err: &lettre::transport::smtp::Error) -> Retry {
    if err.is_permanent() || err.is_tls() || err.is_client() {
        Retry::No
    } else {
        Retry::Yes { after: None }
    }
}

/// A lettre error as one line, with its root cause (the server's answer, a TLS or
/// connection problem).
fn describe_error(err: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(source) = cause {
        let more = source.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = source.source();
    }
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let text = String::from_utf8(mail.to_message("msg_abc").unwrap().formatted()).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        assert!(
            !head.lines().any(|l| l.starts_with("Bcc:")),
            "a header was injected:\n{head}"
        );
    }

    #[test]
    fn message_id_comes_from_the_delivery() {
        let message = email().to_message("msg_abc").unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(text.contains("Message-ID: <msg_abc@example.com>"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
    }
}
