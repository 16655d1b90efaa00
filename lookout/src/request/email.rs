//! An email a service wants sent: a text part and an HTML part of one message, and the
//! SMTP server to submit it to. No I/O here, like an [`HttpRequest`](crate::HttpRequest):
//! [`crate::delivery::smtp`] sends it. `--dry-run` and the snapshots show it through
//! [`Email::preview`], in the same shape as an HTTP request.

use std::fmt;

use lettre::message::Mailbox;
use serde_json::json;

use crate::error::BuildError;
use crate::redact::Redactor;
use crate::request::RequestPreview;

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
    pub(crate) credentials: Option<(String, String)>,
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
        // As sent: header fields folded onto one line (see `header_text`).
        let to: Vec<String> = self
            .to
            .iter()
            .map(|to| header_mailbox(to).to_string())
            .collect();
        let headers = [
            ("from", header_mailbox(&self.from).to_string()),
            ("to", to.join(", ")),
            ("subject", header_text(&self.subject)),
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
}

/// `text` fit for a header field: every run of control characters (CR, LF, tab, NUL, …)
/// and Unicode line or paragraph separators becomes one space. lettre already keeps a
/// CR LF from starting a new header, but it encodes it into the field (RFC 2047), so
/// the decoded Subject a mail client shows, and copies, would still break across lines.
pub fn header_text(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    let mut in_run = false;
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            if !in_run {
                folded.push(' ');
            }
            in_run = true;
        } else {
            folded.push(c);
            in_run = false;
        }
    }
    folded
}

/// A mailbox with its display name folded by [`header_text`] (the address itself
/// cannot hold a control character: lettre refuses it when parsing).
pub fn header_mailbox(mailbox: &Mailbox) -> Mailbox {
    Mailbox::new(
        mailbox.name.as_deref().map(header_text),
        mailbox.email.clone(),
    )
}
