//! The `apprise` service (an Apprise API server). Its Markdown install docs are the doc
//! comments on the struct registered below; `lookout docs apprise` shows them.

use lookout::prelude::*;

lookout::service! {
    /// Apprise
    ///
    /// Hands each new item, comment, block, favorite and deploy to an
    /// [Apprise API](https://github.com/caronc/apprise-api) server, which passes it on to
    /// any of the 100+ services [Apprise](https://appriseit.com/services/) supports
    /// (Signal, Telegram, SMS gateways, email, Mastodon…): one Lookout service for every
    /// service Lookout has no file for. The notification has a title
    /// (`Story #12: Title`), a Markdown body that Apprise converts for each service,
    /// and a type (`warning` for blocks, `success` for deploys, `info` otherwise).
    ///
    /// 1. Run the Apprise API (e.g. `docker run -p 8000:8000 caronc/apprise`) where
    ///    Lookout can reach it, and set `server` to its address
    ///    (`http://apprise.internal:8000`). It has no authentication of its own: keep it
    ///    off the internet, or behind its nginx's Basic authentication, with the
    ///    credentials in the URL (`http://user:password@host:8000`). Lookout treats the
    ///    address as a secret.
    /// 2. Either save your Apprise URLs on the server under a key of your choosing (its
    ///    web page at `/cfg/{key}`, or `POST /add/{key}`) and put that key in `key`,
    ///    optionally with a `tag` to notify only the URLs tagged so;
    /// 3. or, without saving anything on the server, list the Apprise URLs in `urls`
    ///    (e.g. `["tgram://bottoken/ChatID", "mailto://user:pass@example.com"]`).
    ///    Apprise URLs carry each service's credentials, so `urls` (and `key`, which
    ///    unlocks saved ones) are secrets, kept out of every report.
    ///
    /// Lookout posts JSON to the Apprise API's notify endpoint: `POST {server}/notify/{key}`
    /// with a key, `POST {server}/notify/` with `urls` (the API has no version in its
    /// path). Apprise answers `424` when one or more of the services failed: Lookout
    /// reports the failure and does not retry, since the others already have the
    /// message. When Apprise answers `204` (no configuration under the key, or no valid
    /// URL in `urls`), Lookout disables the target instead of retrying.
    pub struct Apprise;

    // What Apprise gets is a message for people, written by Lookout, not the payload.
    category: Push,
    // apprise_api/api/views.py: 204 with "There was no configuration found" (a key)
    // or "There was no valid URLs provided to notify" (urls). Either way nothing
    // will be sent until someone fixes the configuration.
    answers: Answers::status("Apprise", &[
        Means::gone(&["204"], "no configuration or valid URL to notify"),
    ]),
    limits: Limits::none(
        "Apprise passes the message on to the services it is set up for, and cuts it to each one's limit itself.",
    ),
    schema: Schema::new(OPTIONS),
    example: r#"server = "http://apprise.internal:8000"
key = "sprintly-team""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url("server", "The Apprise API server's address.").secret(),
    OptionSpec::string("key", "The key of a configuration saved on the server.")
        .secret()
        .optional(),
    OptionSpec::string(
        "tag",
        "With `key`: notify only the saved URLs with this tag.",
    )
    .public()
    .optional(),
    OptionSpec::list(
        "urls",
        "Apprise URLs to notify, instead of a saved configuration.",
    )
    .secret()
    .optional(),
];

impl Service for Apprise {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let options = job.options;
        let mut body = json!({
            "title": message.title,
            "body": message.markdown(&Dialect::COMMONMARK),
            "type": notification_type(job.event),
            "format": "markdown",
        });
        let urls = options.list("urls");
        let key = match (options.str("key"), urls.is_empty()) {
            (Some(key), true) => {
                if let Some(tag) = options.str("tag") {
                    body["tag"] = Value::from(tag);
                }
                key
            }
            (None, false) => {
                body["urls"] = json!(urls);
                // Stateless: `/notify/`, the trailing slash included.
                ""
            }
            _ => {
                return Err(BuildError::Invalid(
                    "set exactly one of key and urls".into(),
                ));
            }
        };
        let server = options.str("server").unwrap_or_default();
        let url = endpoint(server, &["notify", key])
            .map_err(|e| BuildError::Invalid(format!("server: {e}")))?;
        Ok(vec![HttpRequest::post(url).json(body).into()])
    }
}

/// Apprise's message types (`info`, `success`, `warning`, `failure`) set the icon and
/// colour many services show.
fn notification_type(event: &Event) -> &'static str {
    match event.model.as_str() {
        "Block" => "warning",
        "Deploy" => "success",
        _ => "info",
    }
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_disabled, assert_failed};
    use serde_json::{Value, json};

    const KEY: &str = "sprintlyConfigKeySecret7";
    const URL: &str = "tgram://123456:BotTokenSecret9/-100200300";

    async fn deliver(target: Value, fixture: &str, secret: &str) -> lookout_testkit::Captured {
        let options = |server: &CaptureServer| {
            let mut options = json!({"server": server.url()});
            options
                .as_object_mut()
                .unwrap()
                .extend(target.as_object().unwrap().clone());
            options
        };
        let (_, sent) = deliver_one("apprise", options, &fixture_json(fixture), secret).await;
        sent
    }

    #[tokio::test]
    async fn a_saved_configuration_is_notified_by_its_key() {
        let sent = deliver(json!({"key": KEY, "tag": "dev"}), "block", KEY).await;
        assert_eq!(sent.path, format!("/notify/{KEY}"));
        let body = sent.json();
        assert_eq!(body["type"], "warning");
        assert_eq!(body["format"], "markdown");
        assert_eq!(body["tag"], "dev");
        assert!(body.get("urls").is_none());
        let text = body["body"].as_str().unwrap();
        assert!(text.contains("](http://sprint.ly/i/1111/1111/)"), "{text}");
    }

    #[tokio::test]
    async fn urls_are_notified_statelessly() {
        let sent = deliver(json!({"urls": [URL]}), "deploy", "BotTokenSecret9").await;
        assert_eq!(sent.path, "/notify/");
        let body = sent.json();
        assert_eq!(body["urls"], json!([URL]));
        assert_eq!(body["type"], "success");
        assert_eq!(body["title"], "Deploy to production");
    }

    #[test]
    fn a_key_or_urls_not_both() {
        let options = json!({"server": "http://a.internal:8000", "key": KEY, "urls": [URL]});
        let instance =
            lookout::Instance::new("apprise", "apprise", options.as_object().unwrap()).unwrap();
        let preview = lookout::dispatch::preview_one(&lookout_testkit::fixture("item"), &instance);
        let not_sent = format!("{:?}", preview.not_sent);
        assert!(
            not_sent.contains("set exactly one of key and urls"),
            "{not_sent}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_configuration_disables_and_a_partial_failure_is_not_retried() {
        let options = json!({"server": "http://apprise.internal:8000", "key": KEY});
        let item = fixture_json("item");
        let outcome =
            outcome_of_reply("apprise", options.clone(), &item, Reply::status(204), KEY).await;
        assert_disabled(&outcome, Some(204), "Apprise: no configuration");
        let reply = Reply::status(424).body("One or more notification could not be sent");
        let server = CaptureServer::start();
        server.script("/", std::iter::repeat_n(reply, 4));
        let settings = lookout_testkit::settings_redirected_to(&server);
        let report = lookout_testkit::dispatch_one_with(settings, "apprise", options, &item).await;
        let outcome = &report.results[0].delivery.outcome;
        assert_failed(outcome, Some(424), "");
        assert_eq!(
            server.count(),
            1,
            "sent once: the other services have it already"
        );
    }
}
