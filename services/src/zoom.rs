//! The `zoom` service (Zoom Team Chat). Its Markdown install docs are the doc comments
//! on the struct registered below; `lookout docs zoom` shows them.

use lookout::prelude::*;

lookout::service! {
    /// Zoom Team Chat
    ///
    /// Posts new items, comments, blocks, favorites and deploys to a Zoom Team Chat
    /// channel through Zoom's **Incoming Webhook** app, as a full-format message: the
    /// item's title as the heading, what happened (links written out) and the item's
    /// fields. Lookout sends `POST https://integrations.zoom.us/chat/webhooks/incomingwebhook/…?format=full`
    /// with the connection's verification token in the `Authorization` header.
    ///
    /// 1. A Zoom admin adds the **Incoming Webhook** app from the Zoom App Marketplace.
    /// 2. In the channel, type `/inc connect lookout`. The Incoming Webhook bot answers
    ///    with an **endpoint** and a **verification token**.
    /// 3. Copy the endpoint into `url` and the verification token into `token`. Both are
    ///    secrets: with them anyone can post to the channel, so reports show neither.
    ///
    /// Connections made with `/inc connect -s` (signed) are not supported: use the plain
    /// connection. If Zoom answers `401`, `403` or `404` (the connection was removed or
    /// its token changed), Lookout stops sending to it until you fix the configuration.
    pub struct Zoom;

    category: Chat,
    // Zoom publishes no figure for incoming webhooks: a chat webhook's pace.
    rate_limit: RateLimit::CHAT_WEBHOOK,
    answers: Answers::status("Zoom", &[
        Means::gone(&["401", "403"], "the verification token is no longer valid"),
        Means::gone(&["404"], "the incoming-webhook connection is gone"),
    ]),
    limits: Limits::none(
        "Zoom documents no size limit for incoming webhook messages.",
    ),
    schema: Schema::new(OPTIONS),
    example: r#"url = "https://integrations.zoom.us/chat/webhooks/incomingwebhook/Ex4mpleWebh00kId_0123"
token = "ExampleVerificationToken0123""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "url",
        "The connection's endpoint (`https://integrations.zoom.us/chat/webhooks/incomingwebhook/…`).",
    )
    .secret(),
    OptionSpec::string("token", "The connection's verification token.").secret(),
];

impl Service for Zoom {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let mut url = job.url("url")?;
        // `full` takes a heading and typed body parts; without it Zoom posts the body as
        // it is, as one plain text.
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(name, _)| name != "format")
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("format", "full");
        let token = job.options.str("token").unwrap_or_default();
        let request = HttpRequest::post(url)
            .json(json!({"content": content(&message)}))
            .secret_header("Authorization", token);
        Ok(vec![request.into()])
    }
}

/// The heading (the title) and the body: what happened, the quote and list, and the
/// fields. Zoom shows this text as it is, so nothing is escaped; links are written out.
fn content(message: &Message) -> Value {
    let mut text = Dialect::PLAIN_WITH_URLS.rich(&message.headline);
    let details = message.details(&Dialect::PLAIN_WITH_URLS);
    if !details.is_empty() {
        text.push_str("\n\n");
        text.push_str(&details);
    }
    let mut body = vec![json!({"type": "message", "text": text})];
    if !message.fields.is_empty() {
        let items: Vec<Value> = message
            .fields
            .iter()
            .map(|f| json!({"key": f.name, "value": Dialect::PLAIN.rich(&f.value)}))
            .collect();
        body.push(json!({"type": "fields", "items": items}));
    }
    json!({"head": {"text": message.title}, "body": body})
}

#[cfg(test)]
mod tests {
    use lookout_testkit::assert_disabled;
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use serde_json::{Value, json};

    const HOOK: &str = "chat/webhooks/incomingwebhook/Zo0mWebh00kSecretId42";
    const TOKEN: &str = "Zo0mVerificationT0kenSecret";

    fn options(base: &str) -> Value {
        json!({"url": format!("{base}/{HOOK}?format=message"), "token": TOKEN})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posts_a_full_format_message_with_the_token() {
        let options = |server: &CaptureServer| options(&server.url());
        let (_, sent) = deliver_one("zoom", options, &fixture_json("item"), TOKEN).await;
        // `format=full` replaces whatever format the pasted endpoint had.
        assert_eq!(sent.path, format!("/{HOOK}?format=full"));
        assert_eq!(sent.header("authorization"), Some(TOKEN));
        let content = &sent.json()["content"];
        assert!(
            content["head"]["text"]
                .as_str()
                .unwrap()
                .starts_with("Story #1212: ")
        );
        let text = content["body"][0]["text"].as_str().unwrap();
        assert!(text.ends_with("(http://sprint.ly/i/1/116550/)"), "{text}");
        assert_eq!(content["body"][1]["type"], "fields");
        assert_eq!(
            content["body"][1]["items"][1],
            json!({"key": "Status", "value": "Backlog"})
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removed_connection_disables_the_target() {
        let options = options("https://integrations.zoom.us");
        for status in [401, 404] {
            let reply = Reply::status(status).body("{}");
            let item = fixture_json("item");
            let outcome = outcome_of_reply("zoom", options.clone(), &item, reply, TOKEN).await;
            assert_disabled(&outcome, None, "gone: Zoom: ");
        }
    }
}
