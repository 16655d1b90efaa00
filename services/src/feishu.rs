//! The `feishu` service (Feishu / Lark). Its Markdown install docs are the doc comments
//! on the struct registered below; `lookout docs feishu` shows them.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use lookout::prelude::*;
use lookout::text::Span;
use sha2::Sha256;

lookout::service! {
    /// Feishu / Lark
    ///
    /// Posts new items, comments, blocks, favorites and deploys to a Feishu (飞书) or
    /// Lark group through a custom bot: one rich-text (`post`) message with a title,
    /// what happened with a link to the item, the description or comment, and the item's
    /// fields. Lookout sends to the custom-bot webhook, bot API v2
    /// (`POST https://open.feishu.cn/open-apis/bot/v2/hook/…`, or
    /// `https://open.larksuite.com/open-apis/bot/v2/hook/…` for Lark).
    ///
    /// 1. In the group, open **Settings → Group bots → Add bot** and choose **Custom
    ///    bot**. Give it a name and select **Add**.
    /// 2. Copy the webhook address into `url`. It is a secret: anyone holding it can post
    ///    to the group, so reports show only its host.
    /// 3. Recommended: under **Security settings**, tick **Set signature verification**,
    ///    copy the secret into `secret` and save. Lookout then signs every try with the
    ///    current time (`timestamp` and `sign` in the body); Feishu refuses signatures
    ///    more than an hour old, so keep the server's clock right.
    /// 4. If you chose **Custom keywords** instead, make sure a keyword appears in every
    ///    message (for example the product's name); an IP allow-list works as well.
    ///
    /// Feishu answers errors with HTTP 200 and a code in the body: Lookout reads it. A
    /// deleted bot (code 19001) stops the sending until you fix the configuration; the
    /// frequency limit (11232) is retried later; a bad signature or a missing keyword
    /// fails the delivery and says so.
    pub struct Feishu;

    category: Chat,
    // A custom bot takes 100 requests a minute and 5 a second (same page).
    rate_limit: RateLimit::every(Duration::from_millis(600)).burst(5),
    // Every answer is `{"code": …, "msg": "…"}`, errors inside a 200 too. 11232 is
    // the frequency limit: another try later may pass. 19021 (a bad signature or a
    // clock more than an hour off), 19024 (no keyword) and the other codes: the same
    // message will be refused again.
    answers: Answers::error_codes("Feishu", "/code", "/msg", &[
        Means::gone(&["19001"], "the bot's webhook is gone"),
        Means::try_again(&["11232"], "too many messages"),
    ]),
    // A custom bot's request is at most 20 KB (read as 20,000 bytes, the safer reading).
    limits: Limits::cut(&[
        Limit::body(20_000, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "https://open.feishu.cn/open-apis/bot/v2/hook/00000000-0000-0000-0000-000000000000""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "url",
        "The custom bot's webhook address (`https://open.feishu.cn/open-apis/bot/v2/hook/…`).",
    )
    .secret(),
    OptionSpec::string(
        "secret",
        "The bot's signature-verification secret; when set, every try is signed.",
    )
    .secret()
    .optional(),
];

/// Feishu takes at most 20 KB per request (open.feishu.cn/document/client-docs/bot-v3/
/// add-custom-bot, "Limits"): a long deploy lists this many items and counts the rest.
const LIST_ITEMS: usize = 40;

impl Service for Feishu {
    /// The message, signed with the time of sending when a secret is set (Feishu
    /// refuses signatures over an hour old; previews show where the signature goes).
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let mut body = json!({
            "msg_type": "post",
            "content": {"post": {"zh_cn": {"title": message.title, "content": paragraphs(&message)}}},
        });
        if let Some(secret) = job.options.str("secret") {
            let (timestamp, sign) = job.signed_when_sent(|now| {
                let seconds = unix_seconds(now);
                (seconds.to_string(), sign(secret, seconds))
            });
            body["timestamp"] = timestamp.into();
            body["sign"] = sign.into();
        }
        Ok(vec![HttpRequest::post(job.url("url")?).json(body).into()])
    }
}

/// Feishu's signature: base64 of an HMAC-SHA256 whose *key* is `"{timestamp}\n{secret}"`
/// and whose message is empty (the custom-bot guide's "signature verification").
pub(crate) fn sign(secret: &str, timestamp: u64) -> String {
    let key = format!("{timestamp}\n{secret}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    BASE64.encode(mac.finalize().into_bytes())
}

fn unix_seconds(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `post` content: one paragraph per line, each a list of text and link elements.
/// Feishu shows element text as it is, so nothing is escaped.
fn paragraphs(message: &Message) -> Vec<Value> {
    let mut lines = vec![elements(&message.headline)];
    if let Some(quote) = &message.quote {
        lines.extend(quote.lines().map(|l| vec![text(&format!("> {l}"))]));
    }
    for item in message.list.iter().take(LIST_ITEMS) {
        lines.push(elements(&Rich::text("- ").append(item.clone())));
    }
    if message.list.len() > LIST_ITEMS {
        let more = format!("… and {} more", message.list.len() - LIST_ITEMS);
        lines.push(vec![text(&more)]);
    }
    for field in &message.fields {
        lines.push(elements(
            &Rich::text(format!("{}: ", field.name)).append(field.value.clone()),
        ));
    }
    lines.into_iter().map(Value::Array).collect()
}

fn elements(rich: &Rich) -> Vec<Value> {
    rich.0
        .iter()
        .map(|span| match span {
            Span::Text(t) => text(t),
            Span::Link { text, url } => json!({"tag": "a", "text": text, "href": url}),
        })
        .collect()
}

fn text(text: &str) -> Value {
    json!({"tag": "text", "text": text})
}

#[cfg(test)]
mod tests {
    use lookout::Outcome;
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use serde_json::{Value, json};

    const HOOK: &str = "open-apis/bot/v2/hook/7d1c0ffee0ddba11feedfacebadc0de5";
    const SECRET: &str = "FeishuSignSecret42xyz";

    fn options(url: &str) -> Value {
        json!({"url": url, "secret": SECRET})
    }

    #[test]
    fn signs_with_the_timestamp_and_secret_as_the_key() {
        // Computed independently with Python's hmac module:
        // base64(hmac.new(b"1700000000\ntestsecret", b"", sha256).digest()).
        assert_eq!(
            super::sign("testsecret", 1_700_000_000),
            "AOc8oJ7//5OlQlfWC3nRL0R+IkuzcD1FKcAyibRK9Q8="
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posts_a_signed_rich_text_message() {
        let options = |server: &CaptureServer| options(&format!("{}/{HOOK}", server.url()));
        let before = super::unix_seconds(std::time::SystemTime::now());
        let (_, sent) = deliver_one("feishu", options, &fixture_json("item"), SECRET).await;
        assert_eq!(sent.path, format!("/{HOOK}"));
        let body = sent.json();
        assert_eq!(body["msg_type"], "post");
        let post = &body["content"]["post"]["zh_cn"];
        assert!(post["title"].as_str().unwrap().starts_with("Story #1212: "));
        assert_eq!(
            post["content"][0][1],
            json!({"tag": "a", "text": "#1212 - As a user, I want outbound service hooks so that I will see new items announced in Slack or HipChat.", "href": "http://sprint.ly/i/1/116550/"})
        );
        // Signed with the time of sending, by the same rule the fixed vector checks.
        let timestamp: u64 = body["timestamp"].as_str().unwrap().parse().unwrap();
        assert!((before..before + 60).contains(&timestamp), "{timestamp}");
        assert_eq!(body["sign"], super::sign(SECRET, timestamp));
    }

    #[test]
    fn previews_say_the_signature_is_made_when_sent() {
        let instance = lookout::Instance::new(
            "feishu",
            "feishu",
            options("https://open.feishu.cn/open-apis/bot/v2/hook/x")
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let preview = lookout::dispatch::preview_one(&lookout_testkit::fixture("item"), &instance);
        let body = &preview.requests[0].body;
        assert_eq!(body["timestamp"], lookout::job::SIGNED_WHEN_SENT);
        assert_eq!(body["sign"], lookout::job::SIGNED_WHEN_SENT);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn codes_in_a_200_answer_are_read() {
        let url = format!("https://open.feishu.cn/{HOOK}");
        let item = fixture_json("item");
        let answer = |code: i64, msg: &str| {
            Reply::status(200).body(json!({"code": code, "msg": msg, "data": {}}).to_string())
        };
        let gone = answer(
            19001,
            "param invalid: incoming webhook access token invalid",
        );
        let outcome = outcome_of_reply("feishu", options(&url), &item, gone, SECRET).await;
        let Outcome::Disabled { reason, status } = outcome else {
            panic!("not disabled: {outcome:?}");
        };
        assert_eq!(status, 200);
        assert!(
            reason.contains("Feishu: the bot's webhook is gone"),
            "{reason}"
        );

        let bad_sign = answer(19021, "sign match fail or timestamp is not within one hour");
        let outcome = outcome_of_reply("feishu", options(&url), &item, bad_sign, SECRET).await;
        let Outcome::Failed { reason, .. } = outcome else {
            panic!("not failed: {outcome:?}");
        };
        assert!(
            reason.contains("refused: Feishu: 19021: sign match fail"),
            "{reason}"
        );

        let fine = answer(0, "success");
        let outcome = outcome_of_reply("feishu", options(&url), &item, fine, SECRET).await;
        assert!(matches!(outcome, Outcome::Delivered { status: 200 }));
    }
}
