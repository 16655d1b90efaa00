//! The `hipchat` service (HipChat). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs hipchat` shows them.

use lookout::prelude::*;

lookout::service! {
    /// HipChat
    ///
    /// Sends a one-line message for every new item, comment, block, favorite and deploy to
    /// a HipChat room, exactly as Sprint.ly's HipChat service did, through HipChat's
    /// version 1 API.
    ///
    /// **HipChat has shut down**: Atlassian discontinued it (HipChat Cloud closed in
    /// February 2019), and `api.hipchat.com` no longer takes messages. The service is kept
    /// for fidelity with the original Sprint.ly services and for servers that still speak
    /// HipChat's v1 API: point `base_url` at one.
    ///
    /// 1. `auth_token` is a HipChat API token (a group admin created them under
    ///    **Group admin → API** at `https://your-domain.hipchat.com/admin/api`; a
    ///    notification token is enough). It is a secret: it travels in the form body, and
    ///    reports show `[redacted]` in its place.
    /// 2. `room_id` is the *name* of the room as shown in your HipChat lobby, not its
    ///    number.
    /// 3. Leave `base_url` at the original endpoint, `https://api.hipchat.com`, or set it
    ///    to a server that accepts the same API.
    ///
    /// Each event becomes one form `POST` to `{base_url}/v1/rooms/message` with
    /// `auth_token`, `format=json`, `room_id`, `from=Sprint.ly`, the message, and
    /// `message_format=text`, for example: `Joe S. created the story "Login page"
    /// (#12) http://sprint.ly/i/1/12/`. Only newly created things are sent (`*.created`).
    pub struct HipChat;

    category: Chat,
    // HipChat's v1 `rooms/message` took at most 10,000 characters.
    limits: Limits::cut(&[
        Limit::field("/message", 10_000, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"auth_token = "0123456789abcdef0123456789abcd"
room_id = "Development""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string("auth_token", "A HipChat API token.").secret(),
    OptionSpec::string("room_id", "The room's name (not its number).").public(),
    OptionSpec::url(
        "base_url",
        "Where HipChat's API lives (HipChat itself has shut down).",
    )
    .public()
    .default("https://api.hipchat.com"),
];

impl Service for HipChat {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = wording::one_line(job.event)?;
        let base = job.options.str("base_url").unwrap_or_default();
        let url = endpoint(base, &["v1", "rooms", "message"])
            .map_err(|e| BuildError::Invalid(format!("base_url: {e}")))?;
        let option = |name| job.options.str(name).unwrap_or_default();
        let fields = [
            ("auth_token", option("auth_token")),
            ("format", "json"),
            ("room_id", option("room_id")),
            ("from", "Sprint.ly"),
            ("message", &message),
            ("message_format", "text"),
        ];
        Ok(vec![HttpRequest::post(url).form(fields).into()])
    }
}

#[cfg(test)]
mod tests {
    use lookout::Instance;
    use lookout_testkit::{CaptureServer, deliver_one, fixture, fixture_json};
    use serde_json::{Value, json};

    const TOKEN: &str = "h1pch4tt0ken5ecret";

    fn options(base_url: &str) -> Value {
        json!({"auth_token": TOKEN, "room_id": "Dev Room", "base_url": base_url})
    }

    fn instance(base_url: &str) -> Instance {
        Instance::new("hipchat", "hipchat", options(base_url).as_object().unwrap()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posts_the_one_line_message_end_to_end() {
        let options = |server: &CaptureServer| options(&server.url());
        let fixture = fixture_json("item-no-last-name");
        let (_, got) = deliver_one("hipchat", options, &fixture, TOKEN).await;
        assert_eq!(got.method, "POST");
        assert_eq!(got.path, "/v1/rooms/message");
        assert_eq!(
            got.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let expected: Vec<(String, String)> = [
            ("auth_token", TOKEN),
            ("format", "json"),
            ("room_id", "Dev Room"),
            ("from", "Sprint.ly"),
            (
                "message",
                "Joe created the task \"Document the outbound services API\" (#1212) \
                 http://sprint.ly/i/1/116550/ and assigned it to Craig",
            ),
            ("message_format", "text"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got.form(), expected);
    }

    #[test]
    fn the_token_is_redacted_in_previews() {
        let preview =
            lookout::dispatch::preview_one(&fixture("item"), &instance("https://api.hipchat.com"));
        let shown = serde_json::to_string(&preview).unwrap();
        assert!(!shown.contains(TOKEN), "{shown}");
        assert_eq!(preview.requests[0].body[0]["auth_token"], "[redacted]");
        assert_eq!(
            preview.requests[0].url,
            "https://api.hipchat.com/v1/rooms/message"
        );
    }

    #[test]
    fn every_model_sends_the_original_one_liner() {
        let message = |name: &str| {
            let preview = lookout::dispatch::preview_one(
                &fixture(name),
                &instance("https://api.hipchat.com"),
            );
            preview.requests[0].body[4]["message"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(message("deploy"), "Joe S. deployed 3 items to production.");
        assert!(message("comment-unicode").starts_with(
            "Joe S. commented \"Déjà vu 🚀🚀 — 日本語のテキストも大丈夫ですか？ The spinner still fl...\" on task"
        ));
        // Plain text: HipChat's `text` format shows it as written, so nothing is escaped.
        assert!(message("item-markup").contains("\"<b>&\"x\"</b> *bold*"));
    }
}
