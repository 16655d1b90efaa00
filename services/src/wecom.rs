//! The `wecom` service (WeCom). Its Markdown install docs are the doc comments on the
//! struct registered below; `lookout docs wecom` shows them.

use std::time::Duration;

use lookout::prelude::*;

lookout::service! {
    /// WeCom
    ///
    /// Posts new items, comments, blocks, favorites and deploys to a WeCom (企业微信,
    /// WeChat Work) group through a group robot, as a Markdown message: what happened
    /// with a link to the item, the description or comment as a quote, and the item's
    /// fields. Lookout sends to the robot webhook
    /// (`POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`; the robot API has
    /// no version number).
    ///
    /// 1. In the WeCom group, open the group's settings, select **Group Robot → Add**
    ///    (群机器人 → 添加), and create a new robot.
    /// 2. Copy its webhook address (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`)
    ///    into `url`. It is a secret: anyone holding it can post to the group, so reports
    ///    show only its host.
    ///
    /// A robot takes 20 messages a minute, so Lookout sends at most one every three
    /// seconds; a Markdown message may hold 4096 bytes, so a longer one is cut to fit.
    /// WeCom answers errors with HTTP 200 and an `errcode`: Lookout reads it. A removed
    /// robot (93000) stops the sending until you fix the configuration; the frequency
    /// limit (45009) is retried later.
    pub struct Wecom;

    category: Chat,
    // 20 messages a minute per robot (same page, "消息发送频率限制").
    rate_limit: RateLimit::every(Duration::from_secs(3)),
    // Every answer is `{"errcode": …, "errmsg": "…"}`, errors inside a 200 too.
    answers: Answers::error_codes("WeCom", "/errcode", "/errmsg", &[
        Means::gone(&["93000"], "the robot's webhook is gone"),
        Means::try_again(&["45009"], "too many messages"),
    ]),
    // developer.work.weixin.qq.com: a group robot's text is at most 2,048 bytes, markdown 4,096.
    limits: Limits::cut(&[
        Limit::field("/text/content", 2_048, Unit::Bytes),
        Limit::field("/markdown/content", 4_096, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa""#,
}

const OPTIONS: &[OptionSpec] = &[OptionSpec::url(
    "url",
    "The group robot's webhook address (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`).",
)
.secret()];

/// WeCom's Markdown: a subset (headings, bold, links, code, quotes, `<font>`). User text
/// gets `&`, `<`, `>` as entities (no tag gets through) and a backslash before what
/// would start emphasis, code or a link.
const WECOM: Dialect = Dialect::markdown(escape_wecom);

fn escape_wecom(text: &str) -> String {
    escape::backslashed(&escape::html_text(text), "\\*_`[]#")
}

impl Service for Wecom {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        // Cut to its declared 4,096 bytes by the engine, which shortens the description
        // before the headline and its link.
        let content = message.markdown(&WECOM);
        let body = json!({"msgtype": "markdown", "markdown": {"content": content}});
        Ok(vec![HttpRequest::post(job.url("url")?).json(body).into()])
    }
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_disabled, assert_failed};
    use serde_json::{Value, json};

    const KEY: &str = "wEc0m-r0b0t-key-5ecret-0123456789";

    fn options(base: &str) -> Value {
        json!({"url": format!("{base}/cgi-bin/webhook/send?key={KEY}")})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posts_markdown_to_the_robot() {
        let options = |server: &CaptureServer| options(&server.url());
        let (_, sent) = deliver_one("wecom", options, &fixture_json("item-markup"), KEY).await;
        assert_eq!(sent.path, format!("/cgi-bin/webhook/send?key={KEY}"));
        let body = sent.json();
        assert_eq!(body["msgtype"], "markdown");
        let content = body["markdown"]["content"].as_str().unwrap();
        assert!(
            content.contains(r#"&lt;b&gt;&amp;"x"&lt;/b&gt; \*bold\* \_under\_"#),
            "{content}"
        );
    }

    /// A Markdown message's declared limit.
    const CONTENT_BYTES: usize = 4096;

    #[test]
    fn long_messages_are_cut_to_4096_bytes() {
        let mut deploy: Value = serde_json::from_str(&fixture_json("deploy")).unwrap();
        let mut item = deploy["attributes"]["items"][0].clone();
        item["title"] = "企业微信".repeat(30).into();
        deploy["attributes"]["items"] = vec![item; 100].into();
        let event = lookout::Event::from_value(deploy).unwrap();
        let options = options("https://qyapi.weixin.qq.com");
        let instance = lookout::Instance::new("wecom", "wecom", options.as_object().unwrap());
        let preview = lookout::dispatch::preview_one(&event, &instance.unwrap());
        let content = preview.requests[0].body["markdown"]["content"]
            .as_str()
            .unwrap();
        assert!(content.len() <= CONTENT_BYTES, "{}", content.len());
        // The engine's pass drops whole items ("… and N more"): most of the room is used.
        assert!(content.len() > CONTENT_BYTES * 3 / 4, "{}", content.len());
        assert!(content.contains("more"), "{content}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removed_robot_is_gone_and_the_frequency_limit_retried() {
        let options = options("https://qyapi.weixin.qq.com");
        let item = fixture_json("item");
        let answer = |code: i64, msg: &str| {
            Reply::status(200).body(json!({"errcode": code, "errmsg": msg}).to_string())
        };
        let gone = answer(93000, "invalid webhook url");
        let outcome = outcome_of_reply("wecom", options.clone(), &item, gone, KEY).await;
        assert_disabled(&outcome, Some(200), "WeCom: the robot's webhook is gone");
        let busy = answer(45009, "api freq out of limit");
        let outcome = outcome_of_reply("wecom", options, &item, busy, KEY).await;
        assert_failed(&outcome, None, "refused: WeCom: too many messages (45009");
    }
}
