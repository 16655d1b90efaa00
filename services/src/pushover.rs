//! The `pushover` service (Pushover). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs pushover` shows them.

use lookout::prelude::*;
use lookout::text::budget::{fit, fit_lines, truncate};

lookout::service! {
    /// Pushover
    ///
    /// Push notifications to phones and desktops through [Pushover](https://pushover.net).
    /// Each new item, comment, block, favorite and deploy becomes a notification with a
    /// title (`Story #12: Title`), the message in Pushover's HTML (bold field names,
    /// links), and, for items, a link that opens the item in Sprint.ly.
    ///
    /// 1. Log in at <https://pushover.net> and copy **Your User Key** from the dashboard
    ///    into `user` (or, to notify a team, the key of a delivery group).
    /// 2. Under **Your Applications**, select **Create an Application/API Token**, name it
    ///    `Sprint.ly` (optionally with Sprint.ly's icon) and create it. Copy its **API
    ///    Token/Key** into `token`.
    /// 3. Optionally set `priority`: `-2` (no notification), `-1` (quiet), `0` (normal,
    ///    the default), `1` (high: bypasses quiet hours) or `2` (emergency: repeated every
    ///    5 minutes for an hour until someone acknowledges it). Optionally set `device` to
    ///    notify one of the user's devices only.
    ///
    /// Both keys are secrets and sent in the form body only. Lookout posts to the Message
    /// API, version 1 (`POST https://api.pushover.net/1/messages.json`), with `html=1`.
    /// Pushover refuses messages over 1,024 characters and titles over 250, so longer
    /// ones are cut (a deploy lists as many items as fit, then how many more there are).
    /// Each application may send 10,000 messages a month for free; once they are used up
    /// Pushover answers `429` until the month ends. When Pushover answers that the token
    /// or the user key is invalid, Lookout disables the target instead of retrying.
    pub struct Pushover;

    category: Push,
    // pushover.net/api#limits
    limits: Limits::cut(&[
        Limit::field("/message", 1_024, Unit::Chars),
        Limit::field("/title", 250, Unit::Chars),
        Limit::field("/url", 512, Unit::Chars),
        Limit::field("/url_title", 100, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"token = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
user = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
priority = 0"#,
}

const API_URL: &str = "https://api.pushover.net/1/messages.json";

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string("token", "The application's API token.").secret(),
    OptionSpec::string("user", "The user key (or delivery group key) to notify.").secret(),
    OptionSpec::integer(
        "priority",
        "-2 (no notification) to 2 (emergency, repeated until acknowledged).",
    )
    .public()
    .range(-2, 2)
    .default("0"),
    OptionSpec::string("device", "Notify only this device of the user's.")
        .public()
        .optional(),
];

/// Pushover's limits, in characters (https://pushover.net/api#limits): longer messages
/// and titles are refused; a longer supplementary URL or URL title too.
const MESSAGE_CHARS: usize = 1024;
const TITLE_CHARS: usize = 250;
const URL_CHARS: usize = 512;

/// Emergency messages (priority 2) must say how often Pushover repeats them until
/// acknowledged (at least 30 s) and for how long (https://pushover.net/api#priority).
const EMERGENCY_RETRY_SECONDS: &str = "300";
const EMERGENCY_EXPIRE_SECONDS: &str = "3600";

impl Service for Pushover {
    fn verdict(&self, status: u16, answer_body: &[u8]) -> Verdict {
        let Ok(answer) = serde_json::from_slice::<Value>(answer_body) else {
            return Verdict::ByStatus;
        };
        // A refusal names the bad parameter: `{"token":"invalid","errors":[…],"status":0}`.
        // A wrong token or user key will never work: the app or the user was deleted.
        if answer["token"] == "invalid" {
            return Verdict::Gone("Pushover: the application token is invalid".into());
        }
        if answer["user"] == "invalid" {
            return Verdict::Gone("Pushover: the user or group key is invalid".into());
        }
        // Success is `"status":1`; anything else inside a 2xx is a refusal.
        if (200..300).contains(&status) && answer["status"] != 1 {
            return Verdict::Refused {
                reason: format!("Pushover: {}", answer["errors"]),
                retry: false,
            };
        }
        Verdict::ByStatus
    }

    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let options = job.options;
        let option = |name| options.str(name).unwrap_or_default().to_owned();
        let priority = options.integer("priority").unwrap_or(0);
        let mut form = vec![
            ("token", option("token")),
            ("user", option("user")),
            ("title", truncate(&message.title, TITLE_CHARS - 3)),
            ("message", pushover_html(&message)),
            ("html", "1".to_owned()),
            ("priority", priority.to_string()),
        ];
        if priority == 2 {
            form.push(("retry", EMERGENCY_RETRY_SECONDS.to_owned()));
            form.push(("expire", EMERGENCY_EXPIRE_SECONDS.to_owned()));
        }
        if let Some(url) = message
            .url
            .as_ref()
            .filter(|u| u.chars().count() <= URL_CHARS)
        {
            form.push(("url", url.clone()));
            form.push(("url_title", "Open in Sprint.ly".to_owned()));
        }
        if let Some(device) = options.str("device") {
            form.push(("device", device.to_owned()));
        }
        let url = API_URL.parse().expect("a valid URL");
        Ok(vec![HttpRequest::post(url).form(form).into()])
    }
}

/// The message in the HTML Pushover renders (`<b>`, `<i>`, `<u>`, `<font color>` and
/// `<a href>`; line breaks as typed), within [`MESSAGE_CHARS`]: the headline and the
/// quote first (a quarter each at most), then the fields, and the list (a deploy's
/// items) in the room left, at least a quarter.
fn pushover_html(message: &Message) -> String {
    let quarter = MESSAGE_CHARS / 4;
    let mut head = fit(&Dialect::HTML.rich(&message.headline), quarter);
    if let Some(quote) = &message.quote {
        let quote = fit(&escape::html(quote), quarter);
        head.push_str(&format!("\n\n<i>{quote}</i>"));
    }
    let list_room = if message.list.is_empty() { 0 } else { quarter };
    let fields = message.html_fields();
    let fields_room = MESSAGE_CHARS - chars(&head) - 2 - list_room;
    let fields = fit(&fields.join("\n"), fields_room);
    let mut parts = vec![head];
    if !message.list.is_empty() {
        let used = chars(&parts[0]) + 2 + chars(&fields) + 2;
        parts.push(fit_lines(&message.html_bullets(), MESSAGE_CHARS - used));
    }
    parts.push(fields);
    parts.join("\n\n")
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{MARKUP_TITLE, Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_disabled, assert_failed};
    use serde_json::{Value, json};

    const TOKEN: &str = "aPushoverTokenSecret0000000001";
    const USER: &str = "uPushoverUserSecret00000000002";

    fn options(extra: Value) -> Value {
        let mut options = json!({"token": TOKEN, "user": USER});
        options
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        options
    }

    #[tokio::test]
    async fn posts_a_form_with_html_to_the_v1_messages_api() {
        let options = |_: &_| options(json!({"priority": 1, "device": "pixel"}));
        let (report, sent) =
            deliver_one("pushover", options, &fixture_json("item-markup"), TOKEN).await;
        lookout_testkit::assert_hidden(&report, USER);
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.path, "/1/messages.json");
        assert_eq!(sent.header("host"), Some("api.pushover.net"));
        let field = |name| sent.form_field(name).unwrap_or_default();
        assert_eq!(field("token"), TOKEN);
        assert_eq!(field("user"), USER);
        assert_eq!(field("html"), "1");
        assert_eq!(field("priority"), "1");
        assert_eq!(field("device"), "pixel");
        assert_eq!(field("url"), "http://sprint.ly/i/1/116550/");
        assert_eq!(field("title"), format!("Story #1212: {MARKUP_TITLE}"));
        assert!(sent.form_field("retry").is_none(), "only for emergencies");
        let message = field("message");
        assert!(
            message.starts_with(
                "Joe S. created the story <a href=\"http://sprint.ly/i/1/116550/\">#1212 - &lt;b&gt;&amp;"
            ),
            "{message}"
        );
        assert!(message.contains("<b>Tags:</b> <a href="), "{message}");
    }

    #[tokio::test]
    async fn emergencies_say_how_they_repeat() {
        let options = |_: &_| options(json!({"priority": 2}));
        let (_, sent) = deliver_one("pushover", options, &fixture_json("comment"), TOKEN).await;
        assert_eq!(sent.form_field("retry").as_deref(), Some("300"));
        assert_eq!(sent.form_field("expire").as_deref(), Some("3600"));
    }

    #[test]
    fn a_long_deploy_stays_under_pushovers_limits() {
        let mut event: Value = serde_json::from_str(&fixture_json("deploy")).unwrap();
        let item = event["attributes"]["items"][0].clone();
        event["attributes"]["items"] = Value::Array(vec![item; 100]);
        event["attributes"]["environment"] = Value::from("x".repeat(400));
        let event = lookout::Event::parse(&event.to_string()).unwrap();
        let message = lookout::Message::from_event(&event).unwrap();
        let html = super::pushover_html(&message);
        assert!(html.chars().count() <= super::MESSAGE_CHARS, "{html}");
        assert!(html.contains("\n… and "), "{html}");
        assert!(html.ends_with("</a>"), "the product field stays: {html}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_invalid_token_or_user_key_disables_the_target() {
        let item = fixture_json("item");
        for (answer, why) in [
            (
                r#"{"token":"invalid","errors":["application token is invalid"],"status":0,"request":"r1"}"#,
                "Pushover: the application token is invalid",
            ),
            (
                r#"{"user":"invalid","errors":["user identifier is not a valid user, group, or subscribed user key"],"status":0,"request":"r2"}"#,
                "Pushover: the user or group key is invalid",
            ),
        ] {
            let reply = Reply::status(400).body(answer);
            let outcome =
                outcome_of_reply("pushover", options(json!({})), &item, reply, TOKEN).await;
            assert_disabled(&outcome, Some(400), why);
        }
        // Other refusals (a message too long, a bad sound) fail this delivery only.
        let reply = Reply::status(400).body(
            r#"{"message":"cannot be blank","errors":["message cannot be blank"],"status":0}"#,
        );
        let outcome = outcome_of_reply("pushover", options(json!({})), &item, reply, TOKEN).await;
        assert_failed(&outcome, Some(400), "");
    }

    #[test]
    fn a_2xx_without_status_1_is_a_refusal() {
        use lookout::{Service as _, Verdict};
        let verdict = super::Pushover.verdict(200, br#"{"status":0,"errors":["quota"]}"#);
        assert!(
            matches!(verdict, Verdict::Refused { retry: false, .. }),
            "{verdict:?}"
        );
        let ok = super::Pushover.verdict(200, br#"{"status":1,"request":"r"}"#);
        assert_eq!(ok, Verdict::ByStatus);
    }
}
