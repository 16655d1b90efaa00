//! The `dingtalk` service (DingTalk). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs dingtalk` shows them.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use lookout::prelude::*;
use sha2::Sha256;

lookout::service! {
    /// DingTalk
    ///
    /// Posts new items, comments, blocks, favorites and deploys to a DingTalk (钉钉)
    /// group through a custom robot, as a Markdown message: what happened with a link to
    /// the item, the description or comment as a quote, and the item's fields. Lookout
    /// sends to the robot webhook (`POST https://oapi.dingtalk.com/robot/send?access_token=…`;
    /// the robot API has no version number).
    ///
    /// 1. In the group, open **Group settings → Bots → Add Robot** and choose **Custom**
    ///    (自定义, "via Webhook").
    /// 2. Under **Security settings** tick **Additional signature** (加签) and copy the
    ///    secret (it starts with `SEC`) into `secret`. Lookout then signs every try with
    ///    the current time (`timestamp` and `sign` in the query); DingTalk refuses
    ///    signatures more than an hour old, so keep the server's clock right. Custom
    ///    keywords or an IP allow-list work too, without `secret`.
    /// 3. Finish, and copy the webhook address
    ///    (`https://oapi.dingtalk.com/robot/send?access_token=…`) into `url`. It is a
    ///    secret: anyone holding it can post to the group, so reports show only its host.
    ///
    /// A robot takes 20 messages a minute and is muted for ten minutes beyond that, so
    /// Lookout sends at most one every three seconds. DingTalk answers errors with HTTP
    /// 200 and an `errcode` in the body: Lookout reads it. A removed or disabled robot
    /// stops the sending until you fix the configuration; "sending too fast" (130101)
    /// is retried later; a bad signature or a missing keyword (310000) fails the
    /// delivery and says so.
    pub struct Dingtalk;

    category: Chat,
    // 20 messages a minute per robot; over that it is muted for 10 minutes
    // (open.dingtalk.com/document/robots/custom-robot-access, "Limits").
    rate_limit: RateLimit::every(Duration::from_secs(3)),
    // Every answer is `{"errcode": …, "errmsg": "…"}`, errors inside a 200 too.
    // 300001, 300005 and 400102: the token does not exist (the robot was removed),
    // or the robot is disabled. 310000 (signature, keyword or IP check failed) and
    // the other codes: the same message would be refused again.
    answers: Answers::error_codes("DingTalk", "/errcode", "/errmsg", &[
        Means::gone(&["300001", "300005", "400102"], "the robot is gone"),
        Means::try_again(&["130101"], "sending too fast"),
    ]),
    // A custom robot's request is at most 20,000 bytes.
    limits: Limits::cut(&[
        Limit::body(20_000, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "url",
        "The robot's webhook address (`https://oapi.dingtalk.com/robot/send?access_token=…`).",
    )
    .secret(),
    OptionSpec::string(
        "secret",
        "The robot's signing secret (`SEC…`); when set, every try is signed.",
    )
    .secret()
    .optional(),
];

/// DingTalk's Markdown: a small subset (headings, emphasis, links, quotes, lists).
/// User text gets a backslash before what would start emphasis, code or a link.
const DINGTALK: Dialect = Dialect::markdown(escape_dingtalk);

fn escape_dingtalk(text: &str) -> String {
    escape::backslashed(text, "\\*_`[]#")
}

impl Service for Dingtalk {
    /// The message, signed with the time of sending when a secret is set (DingTalk
    /// refuses signatures over an hour old; previews show where the signature goes).
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let body = json!({
            "msgtype": "markdown",
            // The title shows in the notification and the chat list only.
            "markdown": {"title": message.title, "text": text(&message)},
            "at": {"isAtAll": false},
        });
        let mut url = job.url("url")?;
        if let Some(secret) = job.options.str("secret") {
            let (timestamp, sign) = job.signed_when_sent(|now| {
                let millis = unix_millis(now);
                (millis.to_string(), sign(secret, millis))
            });
            url.query_pairs_mut()
                .append_pair("timestamp", &timestamp)
                .append_pair("sign", &sign);
        }
        Ok(vec![HttpRequest::post(url).json(body).into()])
    }
}

/// The Markdown text: the headline, the quote and list, then one line per field.
fn text(message: &Message) -> String {
    let mut parts = vec![DINGTALK.rich(&message.headline)];
    let details = message.details(&DINGTALK);
    if !details.is_empty() {
        parts.push(details);
    }
    let fields: Vec<String> = message
        .fields
        .iter()
        .map(|f| format!("**{}:** {}", f.name, DINGTALK.rich(&f.value)))
        .collect();
    if !fields.is_empty() {
        // DingTalk needs a blank line (two spaces do not work) to break a line.
        parts.push(fields.join("\n\n"));
    }
    parts.join("\n\n")
}

/// DingTalk's signature: base64 of an HMAC-SHA256 keyed with the secret over
/// `"{timestamp}\n{secret}"` (the custom-robot guide's 加签). The query encoding is left
/// to the URL (`+`, `/` and `=` are percent-encoded there).
fn sign(secret: &str, timestamp: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

fn unix_millis(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use lookout::Outcome;
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_disabled, assert_failed};
    use serde_json::{Value, json};

    const TOKEN: &str = "d1ngta1kAccessT0kenSecret0123456789";
    const SECRET: &str = "SECdingtalkSigningSecret42";

    fn options(base: &str) -> Value {
        json!({"url": format!("{base}/robot/send?access_token={TOKEN}"), "secret": SECRET})
    }

    #[test]
    fn signs_the_timestamp_and_secret_with_the_secret_as_the_key() {
        // Computed independently with Python's hmac module:
        // base64(hmac.new(b"SECtestsecret", b"1700000000000\nSECtestsecret", sha256).digest()).
        assert_eq!(
            super::sign("SECtestsecret", 1_700_000_000_000),
            "7LVwF0dAF3/+MRRulbpE4y72Ogzykc6bS2nG4I99T4s="
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posts_markdown_with_a_signature_in_the_query() {
        let options = |server: &CaptureServer| options(&server.url());
        let before = super::unix_millis(std::time::SystemTime::now());
        let (_, sent) = deliver_one("dingtalk", options, &fixture_json("item"), SECRET).await;
        let (path, query) = sent.path.split_once('?').unwrap();
        assert_eq!(path, "/robot/send");
        let pairs: Vec<(&str, &str)> = query.split('&').filter_map(|p| p.split_once('=')).collect();
        assert_eq!(pairs[0], ("access_token", TOKEN));
        assert_eq!(pairs[1].0, "timestamp");
        let timestamp: u64 = pairs[1].1.parse().unwrap();
        assert!(
            (before..before + 60_000).contains(&timestamp),
            "{timestamp}"
        );
        // The base64 is percent-encoded on the wire, as DingTalk's guide asks.
        let sign = pairs[2]
            .1
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        assert_eq!((pairs[2].0, sign), ("sign", super::sign(SECRET, timestamp)));
        assert!(!pairs[2].1.contains(['+', '/', '=']), "{query}");

        let body = sent.json();
        assert_eq!(body["msgtype"], "markdown");
        assert!(
            body["markdown"]["title"]
                .as_str()
                .unwrap()
                .starts_with("Story #1212")
        );
        let text = body["markdown"]["text"].as_str().unwrap();
        assert!(
            text.starts_with("Joe S. created the story [\\#1212 - As a user"),
            "{text}"
        );
        assert!(text.contains("\n\n**Status:** [Backlog]("), "{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errcodes_in_a_200_answer_are_read() {
        let base = "https://oapi.dingtalk.com";
        let item = fixture_json("item");
        let answer = |code: i64, msg: &str| {
            Reply::status(200).body(json!({"errcode": code, "errmsg": msg}).to_string())
        };
        let gone = answer(300001, "token is not exist");
        let outcome = outcome_of_reply("dingtalk", options(base), &item, gone, TOKEN).await;
        assert_disabled(&outcome, Some(200), "DingTalk: the robot is gone");
        let refused = answer(310000, "sign not match");
        let outcome = outcome_of_reply("dingtalk", options(base), &item, refused, SECRET).await;
        assert_failed(&outcome, None, "refused: DingTalk: 310000: sign not match");
        let ok = answer(0, "ok");
        let outcome = outcome_of_reply("dingtalk", options(base), &item, ok, TOKEN).await;
        assert!(matches!(outcome, Outcome::Delivered { status: 200 }));
    }
}
