//! The `homeassistant` service (Home Assistant). Its Markdown install docs are the doc
//! comments on the struct registered below; `lookout docs homeassistant` shows them.

use lookout::prelude::*;

lookout::service! {
    /// Home Assistant
    ///
    /// Notifies through [Home Assistant](https://www.home-assistant.io)'s notify actions:
    /// its companion apps on your phones, a TV, a smart speaker, or whatever notify
    /// integration you use. Each new item, comment, block, favorite and deploy becomes a
    /// notification with a title (`Story #12: Title`) and the message as plain text;
    /// on the companion app, tapping an item's notification opens it in Sprint.ly.
    ///
    /// 1. In Home Assistant, open your user profile (bottom left), go to the
    ///    **Security** tab and, under **Long-lived access tokens**, select **Create
    ///    token**. Name it `Sprint.ly` and copy it into `token`: it is a secret (it acts
    ///    as you), sent as `Authorization: Bearer …`.
    /// 2. Set `server` to Home Assistant's address as Lookout reaches it (e.g.
    ///    `http://homeassistant.local:8123`).
    /// 3. Choose what notifies, in **Developer tools → Actions** (search `notify.`):
    ///    either a notify action such as `notify.mobile_app_pixel_8`, whose name after
    ///    `notify.` goes into `service` (`mobile_app_pixel_8`); or a notify entity such as
    ///    `notify.kitchen_display` (newer integrations), which goes into `entity_id`.
    ///    Set one of the two.
    ///
    /// Lookout calls the action through Home Assistant's REST API (`POST
    /// {server}/api/services/notify/{service}`, or `…/notify/send_message` with the
    /// entity; the API has no version in its path). When Home Assistant answers `401`
    /// (the token was deleted), Lookout disables the target instead of retrying.
    pub struct HomeAssistant;

    category: Push,
    // Home Assistant answers 401 to a token it does not know: it was deleted.
    answers: Answers::status("Home Assistant", &[
        Means::gone(&["401"], "the access token is not valid"),
    ]),
    limits: Limits::none(
        "Home Assistant hands the message to the notify service named, and each has its own limits.",
    ),
    schema: Schema::new(OPTIONS),
    example: r#"server = "http://homeassistant.local:8123"
token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.example.signature"
service = "mobile_app_pixel_8""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url("server", "Home Assistant's address.").public(),
    OptionSpec::string("token", "A long-lived access token.").secret(),
    OptionSpec::string(
        "service",
        "The notify action to call, without `notify.` (e.g. `mobile_app_pixel_8`).",
    )
    .public()
    .optional(),
    OptionSpec::string(
        "entity_id",
        "A notify entity to send to instead (e.g. `notify.kitchen_display`).",
    )
    .public()
    .optional(),
];

impl Service for HomeAssistant {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let options = job.options;
        let mut body = json!({"title": message.title, "message": message.plain()});
        let action = match (options.str("service"), options.str("entity_id")) {
            (Some(service), None) => {
                if let Some(data) = companion_app_data(service, &message) {
                    body["data"] = data;
                }
                service
            }
            (None, Some(entity)) => {
                body["entity_id"] = Value::from(entity);
                "send_message"
            }
            _ => {
                return Err(BuildError::Invalid(
                    "set exactly one of service and entity_id".into(),
                ));
            }
        };
        let server = options.str("server").unwrap_or_default();
        let url = endpoint(server, &["api", "services", "notify", action])
            .map_err(|e| BuildError::Invalid(format!("server: {e}")))?;
        let token = options.str("token").unwrap_or_default();
        Ok(vec![HttpRequest::post(url).bearer(token).json(body).into()])
    }
}

/// The companion apps' actions (`mobile_app_…`) open a link on tap: `url` on iOS,
/// `clickAction` on Android (companion.home-assistant.io/docs/notifications/notifications-basic).
/// Other notify integrations may refuse `data` they do not know, so they get none.
fn companion_app_data(service: &str, message: &Message) -> Option<Value> {
    let url = message.url.as_ref()?;
    service
        .starts_with("mobile_app_")
        .then(|| json!({"url": url, "clickAction": url}))
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_disabled, assert_failed};
    use serde_json::{Value, json};

    const TOKEN: &str = "eyHomeAssistantTokenSecret.99";

    async fn deliver(target: Value, fixture: &str) -> lookout_testkit::Captured {
        let options = |server: &CaptureServer| {
            let mut options = json!({"server": server.url(), "token": TOKEN});
            options
                .as_object_mut()
                .unwrap()
                .extend(target.as_object().unwrap().clone());
            options
        };
        let (_, sent) = deliver_one("homeassistant", options, &fixture_json(fixture), TOKEN).await;
        assert_eq!(
            sent.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        sent
    }

    #[tokio::test]
    async fn calls_the_notify_action_with_a_tap_link_for_companion_apps() {
        let sent = deliver(json!({"service": "mobile_app_pixel_8"}), "item").await;
        assert_eq!(sent.path, "/api/services/notify/mobile_app_pixel_8");
        let body = sent.json();
        assert!(body["title"].as_str().unwrap().starts_with("Story #1212: "));
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Joe S. created the story #1212")
        );
        let link = "http://sprint.ly/i/1/116550/";
        assert_eq!(body["data"], json!({"url": link, "clickAction": link}));
    }

    #[tokio::test]
    async fn other_actions_get_no_data_and_entities_use_send_message() {
        let sent = deliver(json!({"service": "living_room_tv"}), "item").await;
        assert_eq!(sent.path, "/api/services/notify/living_room_tv");
        assert!(sent.json().get("data").is_none());

        let sent = deliver(json!({"entity_id": "notify.kitchen_display"}), "comment").await;
        assert_eq!(sent.path, "/api/services/notify/send_message");
        let body = sent.json();
        assert_eq!(body["entity_id"], "notify.kitchen_display");
        assert!(body.get("data").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_token_disables_the_target() {
        let options = json!({"server": "http://homeassistant.local:8123", "token": TOKEN, "service": "notify"});
        let item = fixture_json("item");
        let reply = Reply::status(401).body("401: Unauthorized");
        let outcome = outcome_of_reply("homeassistant", options.clone(), &item, reply, TOKEN).await;
        assert_disabled(
            &outcome,
            Some(401),
            "Home Assistant: the access token is not valid",
        );
        // An unknown action is a 400 like any bad call: a failure, not the end.
        let reply = Reply::status(400).body("400: Bad Request");
        let outcome = outcome_of_reply("homeassistant", options, &item, reply, TOKEN).await;
        assert_failed(&outcome, Some(400), "");
    }
}
