//! The `email` service (Email). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs email` shows them.

use lookout::prelude::*;
use lookout::request::email::{Email as Mail, Security, SmtpServer};

lookout::service! {
    /// Email
    ///
    /// Emails each new item, comment, block, favorite and deploy to a list of addresses
    /// through your own SMTP server (or any mail provider's submission service), as one
    /// message with a plain-text part and an HTML part. The subject names the product and
    /// the item, e.g. `[sprint.ly] Story #1212: Add service hooks`.
    ///
    /// 1. Find your provider's SMTP submission settings: host name, port and security.
    ///    Most use port `587` with STARTTLS (`security = "starttls"`, the default); some
    ///    use port `465` with TLS from the start (`security = "tls"`).
    ///    `security = "none"` sends everything, password included, unencrypted: use it
    ///    only for a relay on the same machine or a trusted network.
    /// 2. Create credentials for Lookout: a dedicated mailbox or an app password
    ///    (Gmail and Microsoft 365 want an *app password* when two-factor sign-in is on).
    ///    Put the login in `username` and the password in `password`. Leave both out for
    ///    a relay that needs no login.
    /// 3. Set `from` to an address that account may send as, optionally with a name:
    ///    `"Lookout <lookout@example.com>"`.
    /// 4. List the recipients in `to`, e.g. `["team@example.com", "qa@example.com"]`.
    ///    They all get the same message (each sees the others in `To`).
    ///
    /// The server must accept the message within the engine's request timeout. A server
    /// that refuses it (a wrong password, a rejected sender) fails the delivery with the
    /// server's answer; the password never appears in reports.
    pub struct Email;

    category: Push,
    limits: Limits::none(
        "an SMTP server states its own size limit (tens of megabytes), far above any message Lookout writes.",
    ),
    schema: Schema::new(OPTIONS),
    example: r#"host = "smtp.example.com"
username = "lookout@example.com"
password = "app-password-for-docs"
from = "Lookout <lookout@example.com>"
to = ["team@example.com", "qa@example.com"]"#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string(
        "host",
        "The SMTP server's host name, e.g. `smtp.example.com`.",
    )
    .public()
    .destination(),
    OptionSpec::integer(
        "port",
        "The SMTP server's port (587 for STARTTLS, 465 for TLS).",
    )
    .public()
    .destination()
    .range(1, 65535)
    .default("587"),
    OptionSpec::choice(
        "security",
        Security::CHOICES,
        "`starttls` (upgrade, required), `tls` (TLS from the start) or `none` (unencrypted).",
    )
    .public()
    .destination()
    .default("starttls"),
    OptionSpec::string("username", "The SMTP login, if the server wants one.")
        .public()
        .optional(),
    OptionSpec::string("password", "The SMTP password (or app password).")
        .secret()
        .optional(),
    OptionSpec::string(
        "from",
        "The sender, `lookout@example.com` or `Lookout <lookout@example.com>`.",
    )
    .public(),
    OptionSpec::list("to", "The recipients' addresses.").public(),
];

impl Service for Email {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let server = smtp_server(job)?;
        let subject = format!("[{}] {}", job.event.product.name, message.title);
        let mail = Mail::new(
            server,
            job.options.str("from").unwrap_or_default(),
            &job.options.list("to"),
            subject,
        )?
        .text(message.plain())
        .html(html(&message));
        Ok(vec![mail.into()])
    }
}

fn smtp_server(job: &Job<'_>) -> Result<SmtpServer, BuildError> {
    let options = job.options;
    let port = options.integer("port").unwrap_or(587);
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| BuildError::Invalid(format!("port: {port} is not a port number")))?;
    let security = options
        .str("security")
        .and_then(Security::parse)
        .unwrap_or(Security::StartTls);
    let server = SmtpServer::new(options.str("host").unwrap_or_default(), port, security);
    Ok(match options.str("username") {
        Some(user) => server.login(user, options.str("password").unwrap_or_default()),
        None => server,
    })
}

/// The HTML part: the title as a heading linked to the item, then the message, with a
/// bar in the item type's colour down the left (inline styles: mail clients drop
/// `<style>` blocks).
fn html(message: &Message) -> String {
    let title = escape::html(&message.title);
    let heading = match &message.url {
        Some(url) => format!("<a href=\"{}\">{title}</a>", escape::html(url)),
        None => title,
    };
    format!(
        "<!DOCTYPE html><html><body>\
         <div style=\"border-left: 4px solid {color}; padding-left: 12px\">\
         <h3>{heading}</h3>{body}</div></body></html>",
        color = message.color,
        body = message.html(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lookout::Outcome;
    use lookout_testkit::{SmtpCaptureServer, assert_hidden, dispatch_one, fixture_json};
    use serde_json::{Value, json};

    const PASSWORD: &str = "s3cret-SMTP-pass";

    fn options(server: &SmtpCaptureServer) -> Value {
        json!({
            "host": server.host(),
            "port": server.port(),
            "security": "none",
            "username": "bot@example.com",
            "password": PASSWORD,
            "from": "Lookout <bot@example.com>",
            "to": ["team@example.com", "QA <qa@example.com>"],
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_text_and_html_parts_over_smtp() {
        let server = SmtpCaptureServer::start();
        let report = dispatch_one("email", options(&server), &fixture_json("item-markup")).await;
        assert!(!report.has_failures(), "{report:?}");
        let row = &report.results[0].delivery;
        assert_eq!(row.outcome, Outcome::Delivered { status: 250 });
        assert_eq!(
            row.target.as_deref(),
            Some(format!("smtp://127.0.0.1:{}", server.port()).as_str())
        );

        let mails = server.wait_for(1, Duration::from_secs(5));
        assert_eq!(mails.len(), 1);
        let mail = &mails[0];
        let login = mail.login.as_ref().expect("logged in");
        assert_eq!(login.username, "bot@example.com");
        assert_eq!(login.password, PASSWORD);
        assert_eq!(mail.mail_from, "bot@example.com");
        assert_eq!(mail.rcpt_to, ["team@example.com", "qa@example.com"]);
        assert_eq!(
            mail.header("from").as_deref(),
            Some("Lookout <bot@example.com>")
        );
        let to = mail.header("to").unwrap();
        assert!(
            to.contains("team@example.com") && to.contains("<qa@example.com>"),
            "{to}"
        );
        let subject = mail.header("subject").unwrap();
        assert!(subject.starts_with("[sprint.ly] Story #1212:"), "{subject}");

        let parts = mail.parts();
        assert_eq!(parts.len(), 2, "{}", mail.text());
        assert!(parts[0].content_type.starts_with("text/plain"), "{parts:?}");
        assert!(parts[1].content_type.starts_with("text/html"), "{parts:?}");
        // The title's markup: as typed in the text part, escaped in the HTML part.
        assert!(parts[0].body.contains("<b>&\"x\"</b>"), "{}", parts[0].body);
        assert!(
            parts[1]
                .body
                .contains("&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;"),
            "{}",
            parts[1].body
        );
        assert!(!parts[1].body.contains("<b>&"), "{}", parts[1].body);
        assert!(
            parts[1].body.contains("#96be60"),
            "colour bar: {}",
            parts[1].body
        );

        assert_hidden(&report, PASSWORD);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rejected_login_fails_without_showing_the_password() {
        let server = SmtpCaptureServer::start();
        server.reject_auth();
        let report = dispatch_one("email", options(&server), &fixture_json("comment")).await;
        let row = &report.results[0].delivery;
        match &row.outcome {
            Outcome::Failed { reason, status } => {
                assert_eq!(*status, Some(535), "{reason}");
                assert!(reason.contains("[redacted]"), "{reason}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        assert_eq!(row.attempts, 1, "a 5xx reply is final");
        assert_hidden(&report, PASSWORD);
        assert!(server.mails().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_server_fails_in_time() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = json!({
            "host": "127.0.0.1", "port": port, "security": "none",
            "from": "bot@example.com", "to": "team@example.com",
        });
        let report = dispatch_one("email", options, &fixture_json("item")).await;
        assert!(report.has_failures(), "{report:?}");
        assert!(report.results[0].delivery.duration < Duration::from_secs(6));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_server_is_tried_again() {
        let server = SmtpCaptureServer::start();
        server.answer_busy(1);
        let report = dispatch_one("email", options(&server), &fixture_json("item")).await;
        let row = &report.results[0].delivery;
        assert_eq!(
            row.outcome,
            Outcome::Delivered { status: 250 },
            "{report:?}"
        );
        assert_eq!(row.attempts, 2, "451 is a transient failure");
        assert_eq!(server.wait_for(1, Duration::from_secs(5)).len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn internal_smtp_hosts_are_refused_before_connecting() {
        // Literal addresses: the guard refuses them before any connection is tried.
        for host in ["0.0.0.0", "169.254.169.254"] {
            let options = json!({
                "host": host, "port": 25, "security": "none",
                "from": "bot@example.com", "to": "team@example.com",
            });
            let report = dispatch_one("email", options, &fixture_json("item")).await;
            let row = &report.results[0].delivery;
            match &row.outcome {
                Outcome::Failed { reason, status } => {
                    assert!(
                        reason.starts_with(&format!("blocked: {host} is ")),
                        "{reason}"
                    );
                    assert_eq!(*status, None);
                }
                other => panic!("{host}: expected a refusal, got {other:?}"),
            }
            assert_eq!(row.attempts, 1, "a refusal is not tried again");
        }
    }
}
