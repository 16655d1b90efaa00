//! The `webhook` service (Webhook). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs webhook` shows them.

use std::time::SystemTime;

use lookout::delivery::client_tls;
use lookout::prelude::*;
use lookout::request::forward_payload;
use lookout::request::signing;

lookout::service! {
    /// Webhook
    ///
    /// Sends every event, exactly as Sprint.ly produced it, as a JSON `POST` to one or
    /// more URLs of yours: the four keys `action`, `product`, `attributes` and `model`,
    /// byte for byte. Use it to feed your own tools.
    ///
    /// 1. Set up an endpoint that accepts `POST` requests with a JSON body
    ///    (`Content-Type: application/json`) and answers with any `2xx` status.
    /// 2. Put its address in `urls`. Several URLs each get their own copy, and each has
    ///    its own line in the delivery report.
    /// 3. Optionally set `secret` to a Standard Webhooks signing secret (`whsec_` and
    ///    base64, e.g. from `openssl rand -base64 32`). Every request then carries
    ///    `webhook-id`, `webhook-timestamp` and `webhook-signature` headers; verify them
    ///    on your side with any Standard Webhooks library before trusting the body.
    ///    `webhook-id` stays the same when a delivery is retried, so you can drop
    ///    duplicates.
    ///
    /// 4. If your endpoint requires a client certificate (mutual TLS), put the
    ///    certificate in `client_certificate` and its private key in `client_key`, both
    ///    PEM (a TOML multi-line string, `"""…"""`). If the endpoint's own certificate
    ///    comes from a private CA, put that CA's certificate in `ca_certificate`: it is
    ///    then the only authority trusted for these URLs. `lookout validate` refuses a
    ///    key that does not match its certificate; the key is a secret, never shown.
    ///
    /// Every event is sent, whatever its model or action. Answers other than `2xx` count
    /// as failures; redirects are not followed. URLs are treated as secrets (they often
    /// carry a key): reports show only their host.
    ///
    /// A failed delivery is tried again (connection errors, timeouts, `408`, `425`,
    /// `429` and `500`/`502`/`503`/`504`, honouring `Retry-After`); other `4xx` answers
    /// are not. Answer `410 Gone` to mark the URL disabled. Your endpoint must be on the
    /// public internet: internal addresses are refused unless the engine's
    /// `allow_networks` lists them.
    ///
    /// ### Verifying signatures on your side
    ///
    /// With the official Python library (`pip install standardwebhooks`), given the raw
    /// request body (bytes, before any JSON parsing) and the request headers:
    ///
    /// ```python
    /// from standardwebhooks.webhooks import Webhook, WebhookVerificationError
    ///
    /// verifier = Webhook("whsec_...")  # the same secret as in `secret`
    ///
    /// def receive(body: bytes, headers: dict) -> int:
    ///     try:
    ///         event = verifier.verify(body, headers)  # the parsed payload
    ///     except WebhookVerificationError:
    ///         return 400  # not from Lookout, altered, or too old: drop it
    ///     if already_seen(headers["webhook-id"]):
    ///         return 200  # a retry of a delivery you already handled
    ///     handle(event)
    ///     return 200
    /// ```
    ///
    /// ### Rotating the secret
    ///
    /// Requests are signed with every active secret at once (one `v1,` signature each in
    /// `webhook-signature`), and a receiver accepts a request if any one of them
    /// verifies, so a secret changes without a request refused:
    ///
    /// - **Start:** generate the new secret, set it as `secret` and move the old one to
    ///   `previous_secret`, with `previous_expires = "2026-12-31T00:00:00Z"` (or list
    ///   both: `secrets = ["whsec_new…", "whsec_old…"]`). Every request now carries both
    ///   signatures; receivers still on the old secret keep verifying.
    /// - **Switch** the receivers to the new secret, at your pace.
    /// - **Finish:** remove the old secret, or let `previous_expires` pass: after that
    ///   time it no longer signs.
    ///
    /// Without a library: base64-decode the secret after `whsec_` into the key; compute
    /// HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{raw body}`; base64 it; accept
    /// if it equals (compared in constant time) one of the space-separated `v1,<base64>`
    /// entries of `webhook-signature`, and if `webhook-timestamp` (Unix seconds) is
    /// within five minutes of your clock.
    pub struct Webhook;

    category: Webhook,
    events: &["*"],
    limits: Limits::none(
        "the payload goes as it is to your own endpoint; if it answers `413`, the delivery fails for good, saying the message was too large.",
    ),
    schema: Schema::new(OPTIONS),
    example: r#"urls = ["https://hooks.example.com/sprintly"]"#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "urls",
        Kind::UrlList,
        "Where to POST each event (one or more URLs).",
    )
    .secret(),
    OptionSpec::string(
        "secret",
        "Standard Webhooks signing secret (`whsec_…`); requests are signed when set.",
    )
    .secret()
    .optional()
    .checked(signing::check_secret),
    OptionSpec::new(
        "secrets",
        Kind::List,
        "Several signing secrets, all active: each request carries a signature by each.",
    )
    .secret()
    .optional()
    .checked(signing::check_secret),
    OptionSpec::string(
        "previous_secret",
        "The secret being rotated out: still signs until `previous_expires`.",
    )
    .secret()
    .optional()
    .checked(signing::check_secret),
    OptionSpec::string(
        "previous_expires",
        "When `previous_secret` stops signing (`2026-12-31T00:00:00Z`; unset: never).",
    )
    .public()
    .optional()
    .checked(signing::check_expiry),
    client_tls::CERTIFICATE_OPTION,
    client_tls::KEY_OPTION,
    client_tls::CA_OPTION,
];

impl Service for Webhook {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let options = &job.options;
        let current: Vec<&str> = options
            .str("secret")
            .into_iter()
            .chain(options.list("secrets"))
            .collect();
        let previous = options.str("previous_secret");
        if previous.is_some() && current.is_empty() {
            return Err(BuildError::Invalid(
                "previous_secret: set the new secret as `secret` (or `secrets`) too".into(),
            ));
        }
        let expires = options.str("previous_expires");
        let secrets = signing::active_secrets(current, previous, expires, SystemTime::now());
        forward_payload(job, &options.list("urls"), &secrets)
    }
}

#[cfg(test)]
mod tests {

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_413_fails_for_good_saying_the_message_was_too_large() {
        use lookout_testkit::{Reply, assert_failed, fixture_json, outcome_of_reply};
        let options = serde_json::json!({"urls": ["https://hooks.example.com/in/SECRET413"]});
        let item = fixture_json("item");
        let outcome =
            outcome_of_reply("webhook", options, &item, Reply::status(413), "SECRET413").await;
        assert_failed(
            &outcome,
            Some(413),
            "the message was too large for the platform",
        );
    }
}
