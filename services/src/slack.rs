//! The `slack` service (Slack). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs slack` shows them.

use lookout::prelude::*;
use lookout::text::message::{item_fields, item_link};
use lookout::text::template::Part;
use lookout::text::wording::{self, DEFAULT_COLOR, count_items, item_color, short_name};

lookout::service! {
    /// Slack
    ///
    /// Posts every new item, comment, block, favorite and deploy to a Slack channel, as
    /// Sprint.ly's own Slack integration did: one message with one attachment, coloured
    /// by item type, linking to the item, with its assignee, status, score, tags and
    /// product as fields that link to Sprint.ly's reports.
    ///
    /// 1. In Slack, create an app at <https://api.slack.com/apps> (**Create New App →
    ///    From scratch**), open **Incoming Webhooks**, switch them on and click **Add New
    ///    Webhook to Workspace**. Pick the channel the messages should go to.
    /// 2. Copy the webhook URL (`https://hooks.slack.com/services/…`) into `url`. It is a
    ///    secret: anyone holding it can post to your channel, so reports show only its host.
    /// 3. Optionally add more options: every option other than `url` is merged into the
    ///    message body as it is (`channel`, `username`, `icon_emoji`, or `icon_url` to
    ///    replace Sprint.ly's icon). Webhooks made by a Slack app ignore `channel`,
    ///    `username` and icon overrides and always post as the app; webhooks of Slack's
    ///    legacy custom integrations honour them.
    ///
    /// Only newly created things are announced (`*.created`); updates are skipped. The
    /// message is exactly what the original Sprint.ly service sent, with one intended
    /// difference: text that comes from Sprint.ly (titles, names, comments, tags, product
    /// names) has `&`, `<` and `>` escaped as Slack requires, so a title such as
    /// `<!channel>` shows as written instead of notifying the whole channel.
    pub struct Slack;

    category: Chat,
    // Slack allows about one message per second per incoming webhook.
    rate_limit: RateLimit::CHAT_WEBHOOK,
    // Incoming webhooks answer errors as a bare code in the body
    // (https://api.slack.com/messaging/webhooks#handling_errors). These say the hook
    // will never work again; the rest (`invalid_payload`, `rollup_error`…) go by status.
    answers: Answers::body("Slack", &[
        Means::gone(&["no_service"], "the webhook was removed or disabled"),
        Means::gone(&["invalid_token"], "the webhook's token was revoked"),
        Means::gone(&["channel_not_found"], "the webhook's channel no longer exists"),
        Means::gone(&["channel_is_archived"], "the webhook's channel is archived"),
        Means::gone(&["team_disabled"], "the Slack workspace was disabled"),
    ]),
    // Any other option (`channel`, `username`, …) goes into the body, as it did.
    // docs.slack.dev: `text` is cut by Slack after 40,000 characters.
    limits: Limits::cut(&[
        Limit::field("/text", 40_000, Unit::Chars),
    ]),
    schema: Schema::with_extra(OPTIONS),
    example: r##"url = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
channel = "#sprintly"
username = "Sprint.ly""##,
}

/// The bot icon Sprint.ly's Slack messages carried.
const ICON_URL: &str =
    "https://s3.amazonaws.com/sprintly-marketing-assets/integrations/slack-bot-icon.png";

const OPTIONS: &[OptionSpec] = &[OptionSpec::url(
    "url",
    "The incoming-webhook URL from Slack (`https://hooks.slack.com/services/…`).",
)
.secret()];

impl Service for Slack {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let mut body = Map::new();
        body.insert("icon_url".into(), ICON_URL.into());
        if job.event.digest().is_some() {
            // A digest is one text: its headline, then each event's, as many as fit.
            let text = job.message()?.headline_and_list(&Dialect::MRKDWN);
            body.insert("text".into(), text.into());
        } else {
            body.insert("attachments".into(), json!([attachment(job)?]));
        }
        // Merged last, so an option may replace even `icon_url` (the original did the same).
        for (name, value) in job.options.extra() {
            body.insert(name.to_owned(), value.clone());
        }
        let url = job.url("url")?;
        Ok(vec![
            HttpRequest::post(url).json(Value::Object(body)).into(),
        ])
    }
}

/// The one attachment, in the configured service's own words where it has templates: the
/// `headline` is the pretext, the `summary` the fallback, the `quote` the text.
fn attachment(job: &Job<'_>) -> Result<Value, BuildError> {
    let mut attachment = default_attachment(job.event)?;
    if let Some(pretext) = job.templated(Part::Headline) {
        attachment.pretext = Some(pretext?);
    }
    if let Some(text) = job.templated(Part::Quote) {
        attachment.text = text?;
    }
    let fallback = match job.templated(Part::Summary) {
        Some(summary) => Dialect::PLAIN.rich(&summary?),
        None => wording::one_line(job.event)?,
    };
    // The fallback is the original one-liner; Slack reads `<…>` in it too, so it is
    // escaped like the rest.
    Ok(attachment.to_json(escape::html_text(&fallback)))
}

/// The attachment Sprint.ly sent: colour, pretext, text and fields for the event's model.
fn default_attachment(event: &Event) -> Result<Attachment, BuildError> {
    // Items, blocks and favorites describe one item: its link, colour and fields.
    let about = |item: &Item| Attachment {
        color: item_color(&item.kind),
        pretext: None,
        text: item_link(item),
        fields: Some(item_fields(item, product_link(item, event))),
    };
    let attachment = match wording::attributes(event)? {
        Attributes::Item(item) => Attachment {
            pretext: Some(Rich::text(format!(
                "{} created the {}:",
                short_name(&item.created_by),
                item.kind
            ))),
            ..about(item)
        },
        Attributes::Comment(comment) => Attachment {
            color: item_color(&comment.item.kind),
            pretext: linked(
                format!(
                    "{} commented on {} ",
                    short_name(&comment.created_by),
                    comment.item.kind
                ),
                &comment.item,
                ":",
            ),
            text: Rich::text(format!("\"{}\"", wording::excerpt(&comment.body))),
            fields: None,
        },
        Attributes::Block(block) => Attachment {
            pretext: linked(
                format!(
                    "{} indicated the {} ",
                    short_name(&block.user),
                    block.blocked.kind
                ),
                &block.blocked,
                format!(" is blocked by the {}:", block.item.kind),
            ),
            ..about(&block.item)
        },
        Attributes::Favorite(favorite) => Attachment {
            pretext: Some(Rich::text(format!(
                "{} favorited the {}:",
                short_name(&favorite.user),
                favorite.item.kind
            ))),
            ..about(&favorite.item)
        },
        Attributes::Deploy(deploy) => Attachment {
            color: DEFAULT_COLOR,
            pretext: None,
            text: Rich::text(format!(
                "{} deployed {} to {}",
                short_name(&deploy.user),
                count_items(deploy.items.len()),
                deploy.environment
            )),
            fields: None,
        },
        Attributes::Alert(alert) => Attachment {
            color: wording::ALERT_COLOR,
            pretext: Some(Rich::text(&alert.title)),
            text: Rich::text(&alert.body),
            fields: None,
        },
        Attributes::Other(_) => return Err(BuildError::no_message_for(event)),
    };
    Ok(attachment)
}

struct Attachment {
    color: &'static str,
    pretext: Option<Rich>,
    text: Rich,
    /// Item-centred attachments carry fields; comments and deploys have none.
    fields: Option<Vec<Field>>,
}

impl Attachment {
    fn to_json(&self, fallback: String) -> Value {
        let mut out = Map::new();
        out.insert("color".into(), self.color.into());
        out.insert("fallback".into(), fallback.into());
        if let Some(pretext) = &self.pretext {
            out.insert("pretext".into(), Dialect::MRKDWN.rich(pretext).into());
        }
        out.insert("text".into(), Dialect::MRKDWN.rich(&self.text).into());
        if let Some(fields) = &self.fields {
            let fields: Vec<Value> = fields
                .iter()
                .map(|f| {
                    let value = Dialect::MRKDWN.rich(&f.value);
                    json!({"title": f.name, "value": value, "short": true})
                })
                .collect();
            out.insert("fields".into(), fields.into());
        }
        Value::Object(out)
    }
}

/// The Product field links to the product the item names (the original read it there);
/// the event's product stands in when the item does not say.
fn product_link(item: &Item, event: &Event) -> Rich {
    let (id, name) = match &item.product {
        Some(product) => (product.id, product.name.as_str()),
        None => (event.product.id, event.product.name.as_str()),
    };
    Rich::link(name, wording::reports_link("product", &id.to_string()))
}

/// A pretext that links to an item in the middle of a sentence.
fn linked(before: String, item: &Item, after: impl Into<String>) -> Option<Rich> {
    Some(Rich::text(before).append(item_link(item)).push(after))
}

#[cfg(test)]
mod tests {
    use lookout::Instance;
    use lookout_testkit::assert_failed;
    use lookout_testkit::{CaptureServer, deliver_one, fixture, fixture_json};
    use serde_json::{Value, json};

    const SECRET_PATH: &str = "services/T0SECRET/B0SECRET/hunter2hunter2";

    fn options(url: &str) -> Value {
        json!({"url": url, "channel": "#dev", "username": "Sprint.ly"})
    }

    fn instance(url: &str) -> Instance {
        Instance::new("slack", "slack", options(url).as_object().unwrap()).unwrap()
    }

    /// What Slack would receive for a fixture (built, not sent).
    fn body(name: &str) -> Value {
        let instance = instance("https://hooks.slack.com/services/T0/B0/X");
        let preview = lookout::dispatch::preview_one(&fixture(name), &instance);
        assert!(preview.not_sent.is_none(), "{name}: {:?}", preview.not_sent);
        preview.requests[0].body.clone()
    }

    fn attachment(name: &str) -> Value {
        body(name)["attachments"][0].clone()
    }

    fn field_titles(attachment: &Value) -> Vec<&str> {
        let fields = attachment["fields"].as_array().unwrap();
        fields
            .iter()
            .map(|f| f["title"].as_str().unwrap())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_that_mean_the_hook_is_gone_disable_it() {
        use lookout::Outcome;
        use lookout_testkit::{Reply, outcome_of_reply};
        let url = format!("https://hooks.slack.com/{SECRET_PATH}");
        let item = fixture_json("item");
        for (status, code) in [
            (404, "no_service"),
            (403, "invalid_token"),
            (404, "channel_not_found"),
        ] {
            let reply = Reply::status(status).body(code);
            let outcome = outcome_of_reply("slack", options(&url), &item, reply, SECRET_PATH).await;
            let Outcome::Disabled {
                reason,
                status: got,
            } = outcome
            else {
                panic!("{code}: not disabled: {outcome:?}");
            };
            assert_eq!(got, status);
            assert!(
                reason.contains(code)
                    && reason.starts_with(&format!("HTTP {status}: gone: Slack: ")),
                "{reason}"
            );
        }
        // Other errors go by their status: a bad payload is a plain failure.
        let reply = Reply::status(400).body("invalid_payload");
        let outcome = outcome_of_reply("slack", options(&url), &item, reply, SECRET_PATH).await;
        assert_failed(&outcome, Some(400), "");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_the_original_attachment_end_to_end() {
        let options = |server: &CaptureServer| options(&format!("{}/{SECRET_PATH}", server.url()));
        let (report, request) =
            deliver_one("slack", options, &fixture_json("item"), "hunter2").await;
        assert_eq!(request.path, format!("/{SECRET_PATH}"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        let body = request.json();
        assert_eq!(
            body["icon_url"],
            "https://s3.amazonaws.com/sprintly-marketing-assets/integrations/slack-bot-icon.png"
        );
        // Options other than `url` are merged into the body.
        assert_eq!(body["channel"], "#dev");
        assert_eq!(body["username"], "Sprint.ly");
        assert!(body.get("url").is_none());
        let title = "As a user, I want outbound service hooks so that I will see new items \
                     announced in Slack or HipChat.";
        assert_eq!(
            body["attachments"],
            json!([{
                "color": "#96be60",
                "fallback": format!(
                    "Joe S. created the story \"{title}\" (#1212) http://sprint.ly/i/1/116550/"
                ),
                "pretext": "Joe S. created the story:",
                "text": format!("<http://sprint.ly/i/1/116550/|#1212 - {title}>"),
                "fields": [
                    {"title": "Assigned to", "value": "<https://sprint.ly/reports?assignee=1111|Joe S.>", "short": true},
                    {"title": "Status", "value": "<https://sprint.ly/reports?status=backlog|Backlog>", "short": true},
                    {"title": "Score", "value": "~", "short": true},
                    {"title": "Product", "value": "<https://sprint.ly/reports?product=1111|sprint.ly>", "short": true},
                ],
            }])
        );

        let shown = serde_json::to_string(&report).unwrap();
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn comments_quote_an_excerpt_and_have_no_fields() {
        let a = attachment("comment-mentions");
        assert_eq!(a["color"], "#454545");
        assert_eq!(
            a["pretext"],
            "Joe S. commented on task <http://sprint.ly/i/1/91594/|#1212 - Change the spinner \
             to our glowing running man.>:"
        );
        assert_eq!(
            a["text"],
            "\"Craig Pattison can you pair with Joe Stump on this...\""
        );
        assert!(a.get("fields").is_none());
    }

    #[test]
    fn blocks_describe_the_blocking_item() {
        let a = attachment("block");
        assert_eq!(
            a["pretext"],
            "Joe S. indicated the story <http://sprint.ly/i/1111/1111/|#2222 - As a customer, \
             I want to be notified before my CC expires so that I can update my billing \
             details.> is blocked by the task:"
        );
        assert_eq!(a["color"], "#454545");
        assert_eq!(
            a["text"],
            "<http://sprint.ly/i/1111/1111/|#2222 - Change the spinner to our glowing running man.>"
        );
        let titles = field_titles(&a);
        assert_eq!(
            titles,
            ["Assigned to", "Status", "Score", "Tags", "Product"]
        );
        assert_eq!(
            a["fields"][0]["value"],
            "<https://sprint.ly/reports?assignee=1111|Craig P.>"
        );
        assert_eq!(
            a["fields"][1]["value"],
            "<https://sprint.ly/reports?status=in-progress|In progress>"
        );
        assert_eq!(
            a["fields"][3]["value"],
            "<https://sprint.ly/reports?tag=ios|ios>, <https://sprint.ly/reports?tag=ipad|ipad>"
        );
    }

    #[test]
    fn favorites_and_names_without_last_names() {
        assert_eq!(
            attachment("favorite")["pretext"],
            "Joe S. favorited the story:"
        );
        let a = attachment("item-no-last-name");
        assert_eq!(a["pretext"], "Joe created the task:");
        assert_eq!(
            a["fields"][0]["value"],
            "<https://sprint.ly/reports?assignee=2222|Craig>"
        );
        // Unassigned, untagged items leave those fields out.
        let a = attachment("item-unassigned");
        assert_eq!(a["color"], "#D94949");
        let titles = field_titles(&a);
        assert_eq!(titles, ["Status", "Score", "Product"]);
    }

    #[test]
    fn deploys_say_item_for_one_and_items_otherwise() {
        let one = attachment("deploy-single");
        assert_eq!(one["text"], "Joe S. deployed 1 item to staging");
        assert_eq!(one["color"], "#84b431");
        assert!(one.get("pretext").is_none() && one.get("fields").is_none());
        // The fallback keeps the original's one-liner, "items" and all.
        assert_eq!(one["fallback"], "Joe S. deployed 1 items to staging.");
        assert_eq!(
            attachment("deploy")["text"],
            "Joe S. deployed 3 items to production"
        );
    }

    /// The one intended difference from the original: `&`, `<` and `>` in Sprint.ly's
    /// text are escaped, so they cannot form links or mentions. The original sent them raw.
    #[test]
    fn user_text_is_escaped_for_slack() {
        let a = attachment("item-markup");
        let title = "&lt;b&gt;&amp;\"x\"&lt;/b&gt; *bold* _under_ `code` [link](http://evil.example) @everyone";
        assert_eq!(
            a["text"],
            format!("<http://sprint.ly/i/1/116550/|#1212 - {title}>")
        );
        assert!(
            a["fallback"]
                .as_str()
                .unwrap()
                .contains(&format!("\"{title}\""))
        );
        assert_eq!(
            a["fields"][3]["value"],
            "<https://sprint.ly/reports?tag=%3Cscript%3E|&lt;script&gt;>, \
             <https://sprint.ly/reports?tag=a%26b|a&amp;b>"
        );
    }

    #[test]
    fn an_option_may_replace_the_icon() {
        let mut options = options("https://hooks.slack.com/services/T0/B0/X");
        options["icon_url"] = json!("https://example.com/i.png");
        let instance = Instance::new("slack", "slack", options.as_object().unwrap()).unwrap();
        let preview = lookout::dispatch::preview_one(&fixture("item"), &instance);
        assert_eq!(
            preview.requests[0].body["icon_url"],
            "https://example.com/i.png"
        );
    }
}
