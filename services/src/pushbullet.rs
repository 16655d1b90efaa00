//! The `pushbullet` service (Pushbullet). Its Markdown install docs are the doc comments
//! on the struct registered below; `lookout docs pushbullet` shows them.

use lookout::prelude::*;

lookout::service! {
    /// Pushbullet
    ///
    /// Pushes to your phones and browsers through [Pushbullet](https://www.pushbullet.com).
    /// Each new item, comment, block, favorite and deploy becomes a push with a title
    /// (`Story #12: Title`) and the message as plain text; items arrive as *link* pushes
    /// that open the item in Sprint.ly, the rest as notes.
    ///
    /// 1. Log in at <https://www.pushbullet.com>, open **Settings → Account** and select
    ///    **Create Access Token**.
    /// 2. Copy the token (`o.…`) into `token`. It is a secret: it can push (and read
    ///    pushes) as you. Lookout sends it in the `Access-Token` header.
    /// 3. By default every device of the account gets the push. To narrow it, set one of
    ///    `device_iden` (one device: its `iden` from `GET /v2/devices`), `email` (push to
    ///    another Pushbullet user) or `channel_tag` (everyone subscribed to a channel you
    ///    own).
    ///
    /// Lookout uses the Pushes API, version 2 (`POST https://api.pushbullet.com/v2/pushes`).
    /// Free accounts may push a limited number of times a month; over the limit
    /// Pushbullet answers `429` and Lookout retries later within the delivery's time.
    /// When Pushbullet answers `401` (the token was revoked), Lookout disables the target
    /// instead of retrying.
    pub struct Pushbullet;

    category: Push,
    // Pushbullet answers 401 when no valid access token was given
    // (docs.pushbullet.com, "HTTP Status Codes"): the token was revoked.
    answers: Answers::status("Pushbullet", &[
        Means::gone(&["401"], "the access token is invalid"),
    ]),
    limits: Limits::none(
        "Pushbullet documents no size limit for a push.",
    ),
    schema: Schema::new(OPTIONS),
    example: r#"token = "o.AbCdEfGhIjKlMnOpQrStUvWxYz012345""#,
}

const API_URL: &str = "https://api.pushbullet.com/v2/pushes";

/// The options that pick who gets the push; at most one may be set.
const TARGETS: &[&str] = &["device_iden", "email", "channel_tag"];

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string("token", "An access token from **Settings → Account**.").secret(),
    OptionSpec::string("device_iden", "Push to this device only.")
        .public()
        .optional(),
    OptionSpec::string("email", "Push to this Pushbullet user instead of yourself.")
        .public()
        .optional(),
    OptionSpec::string(
        "channel_tag",
        "Push to the subscribers of this channel of yours.",
    )
    .public()
    .optional(),
];

impl Service for Pushbullet {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let mut body = job.options.pick(TARGETS);
        if body.len() > 1 {
            return Err(BuildError::Invalid(
                "set only one of device_iden, email and channel_tag".into(),
            ));
        }
        body.insert("title".into(), message.title.clone().into());
        // A link push carries the item's link itself: the text need not repeat it.
        match &message.url {
            Some(url) => {
                body.insert("type".into(), "link".into());
                body.insert("url".into(), url.clone().into());
                body.insert("body".into(), plain_without_urls(&message).into());
            }
            None => {
                body.insert("type".into(), "note".into());
                body.insert("body".into(), message.plain().into());
            }
        }
        let token = job.options.str("token").unwrap_or_default();
        let url = API_URL.parse().expect("a valid URL");
        Ok(vec![
            HttpRequest::post(url)
                .secret_header("Access-Token", token)
                .json(body.into())
                .into(),
        ])
    }
}

/// The message as plain text with links shown as their text only.
fn plain_without_urls(message: &Message) -> String {
    let mut text = Dialect::PLAIN.rich(&message.headline);
    if let Some(quote) = &message.quote {
        text.push_str(&format!("\n\n{quote}"));
    }
    for field in &message.fields {
        text.push_str(&format!(
            "\n{}: {}",
            field.name,
            Dialect::PLAIN.rich(&field.value)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use lookout_testkit::assert_disabled;
    use lookout_testkit::{MARKUP_TITLE, Reply, deliver_one, fixture_json, outcome_of_reply};
    use serde_json::{Value, json};

    const TOKEN: &str = "o.PushbulletTokenSecret123";

    async fn deliver(options: Value, fixture: &str) -> lookout_testkit::Captured {
        let (_, sent) = deliver_one("pushbullet", |_| options, &fixture_json(fixture), TOKEN).await;
        assert_eq!(sent.path, "/v2/pushes");
        assert_eq!(sent.header("host"), Some("api.pushbullet.com"));
        assert_eq!(sent.header("access-token"), Some(TOKEN));
        sent
    }

    #[tokio::test]
    async fn items_are_link_pushes() {
        let options = json!({"token": TOKEN, "channel_tag": "sprintly"});
        let body = deliver(options, "item-markup").await.json();
        assert_eq!(body["type"], "link");
        assert_eq!(body["channel_tag"], "sprintly");
        assert_eq!(body["url"], "http://sprint.ly/i/1/116550/");
        assert_eq!(body["title"], format!("Story #1212: {MARKUP_TITLE}"));
        let text = body["body"].as_str().unwrap();
        assert!(
            text.starts_with(&format!(
                "Joe S. created the story #1212 - {MARKUP_TITLE}\n"
            )),
            "plain text, the link not repeated: {text}"
        );
    }

    #[tokio::test]
    async fn deploys_are_notes() {
        let body = deliver(json!({"token": TOKEN}), "deploy").await.json();
        assert_eq!(body["type"], "note");
        assert!(body.get("url").is_none());
        assert!(body.get("device_iden").is_none());
        let text = body["body"].as_str().unwrap();
        assert!(
            text.contains("\n- Task #1213 (http://sprint.ly/i/1111/1213/)"),
            "{text}"
        );
    }

    #[test]
    fn one_target_at_most() {
        let options = json!({"token": TOKEN, "email": "a@example.com", "device_iden": "ujx"});
        let instance =
            lookout::Instance::new("pushbullet", "pushbullet", options.as_object().unwrap())
                .unwrap();
        let preview = lookout::dispatch::preview_one(&lookout_testkit::fixture("item"), &instance);
        let not_sent = format!("{:?}", preview.not_sent);
        assert!(not_sent.contains("set only one of"), "{not_sent}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revoked_token_disables_the_target() {
        let reply = Reply::status(401).body(
            r#"{"error":{"code":"invalid_access_token","type":"invalid_request","message":"Access token is missing or invalid.","cat":"(=^‥^=)"}}"#,
        );
        let options = json!({"token": TOKEN});
        let outcome =
            outcome_of_reply("pushbullet", options, &fixture_json("item"), reply, TOKEN).await;
        assert_disabled(
            &outcome,
            Some(401),
            "Pushbullet: the access token is invalid",
        );
    }
}
