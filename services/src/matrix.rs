//! The `matrix` service (Matrix). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs matrix` shows them.

use lookout::prelude::*;

lookout::service! {
    /// Matrix
    ///
    /// Posts each new item, comment, block, favorite and deploy to a Matrix room (Element
    /// or any other client), as an HTML message with links and a plain-text fallback. It
    /// uses the Client-Server API v3 (`PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`)
    /// with a bot account's access token.
    ///
    /// 1. Create an account for the bot on your homeserver (e.g. register `@lookout:example.org`
    ///    in Element). A dedicated account keeps its token separate from anyone's own.
    /// 2. Get its access token: in Element, sign in as the bot and open
    ///    **Settings → Help & About → Advanced → Access Token** (or call
    ///    `POST /_matrix/client/v3/login`). Put it in `access_token`. Do not log the bot out
    ///    afterwards: that revokes the token.
    /// 3. Invite the bot to the room and accept the invitation as the bot.
    /// 4. Find the room's internal ID in **Room settings → Advanced** and put it in
    ///    `room_id`. It starts with `!`: in rooms of version 12 and later it has no
    ///    server part (`!AE7_Te7zXB0a-4tyMVrsgqJ4QX6qDlNAB4gxgTjBvE0`), in older rooms
    ///    it ends with one (`!AbCdEf:example.org`). An alias such as `#team:example.org`
    ///    does not work here.
    /// 5. Put your homeserver's client URL in `homeserver`, e.g. `https://matrix.example.org`
    ///    (for matrix.org accounts, `https://matrix-client.matrix.org`).
    ///
    /// Messages are sent as `m.notice`, which clients show as coming from a bot and which
    /// other bots must not answer; set `msgtype = "m.text"` for ordinary messages. The
    /// transaction ID comes from the delivery, so a retried delivery is not posted twice.
    /// When the homeserver rate-limits the bot (`M_LIMIT_EXCEEDED` with
    /// `retry_after_ms`), Lookout waits as long as it asks before trying again.
    ///
    /// A `401` with `M_UNKNOWN_TOKEN` (the access token was revoked, e.g. the bot was
    /// logged out) or a `403` with `M_FORBIDDEN` (the bot left the room, or was kicked or
    /// banned) disables the target: the delivery is reported `disabled`, and under
    /// `lookout serve` nothing more is sent to that room until you fix the cause and
    /// enable the target again (`lookout products enable-target PRODUCT NAME`, or change
    /// the service's options).
    pub struct Matrix;

    category: Chat,
    // Homeservers rate-limit messages per user; the URL holds a fresh transaction id each time, so the limit is per server.
    rate_limit: RateLimit::CHAT_WEBHOOK.per_origin(),
    // Errors are `{"errcode": "M_FORBIDDEN", "error": "…"}` (spec.matrix.org, "Standard
    // error response"): a revoked token and a room the bot may not post to are for
    // good; an event too large for the homeserver is refused as it is.
    answers: Answers::json("Matrix", "/errcode", "/error", &[
        Means::gone(&["M_UNKNOWN_TOKEN"], "the access token was revoked").with_status(&[401]),
        Means::gone(&["M_FORBIDDEN"], "the bot may not post to the room").with_status(&[403]),
        Means::refused(&["M_TOO_LARGE"], "the message was too large for the homeserver"),
    ]),
    wait: Wait::BodyMillis("/retry_after_ms"),
    // spec.matrix.org: an event is at most 65,536 bytes as the server stores it, with its
    // envelope (ids, hashes, signatures, previous events); 4 KiB of it are left for that.
    limits: Limits::cut(&[
        Limit::body(65_536 - 4_096, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"homeserver = "https://matrix.example.org"
access_token = "syt_bG9va291dA_FakeTokenForDocs_0a1b2c"
room_id = "!AbCdEfGhIjKlMnOp:example.org""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "homeserver",
        "The homeserver's client URL, e.g. `https://matrix.example.org`.",
    )
    .public(),
    OptionSpec::string(
        "access_token",
        "The bot account's access token (sent as `Authorization: Bearer`).",
    )
    .secret(),
    OptionSpec::string(
        "room_id",
        "The room's internal ID, `!…` (from Room settings → Advanced).",
    )
    .public(),
    OptionSpec::choice(
        "msgtype",
        &["m.notice", "m.text"],
        "`m.notice` (shown as a bot's message) or `m.text`.",
    )
    .public()
    .default("m.notice"),
];

impl Service for Matrix {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let options = job.options;
        let homeserver = options.str("homeserver").unwrap_or_default();
        let room = options.str("room_id").unwrap_or_default();
        if !room.starts_with('!') {
            // An alias (`#team:example.org`) would be refused by the homeserver with a
            // less helpful message.
            return Err(BuildError::Invalid(format!(
                "room_id: `{room}` is not a room ID (they start with `!`; see Room settings → Advanced)"
            )));
        }
        // Path parameters are percent-encoded whole (`!` and `:` included), as the spec
        // asks; the transaction ID is stable for the delivery, so retries are deduplicated.
        let url = format!(
            "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            homeserver.trim_end_matches('/'),
            escape::url_path_segment(room),
            escape::url_path_segment(&format!("lookout.{}", job.delivery_id)),
        );
        let url = url
            .parse()
            .map_err(|e| BuildError::Invalid(format!("homeserver: {e}")))?;
        let body = json!({
            "msgtype": options.str("msgtype").unwrap_or("m.notice"),
            "body": message.plain(),
            "format": "org.matrix.custom.html",
            "formatted_body": formatted_body(&message),
        });
        Ok(vec![
            HttpRequest::put(url)
                .bearer(options.str("access_token").unwrap_or_default())
                .json(body)
                .into(),
        ])
    }
}

/// The HTML message with a marker in the item type's colour in front: Matrix has no
/// message colour, but clients render `data-mx-color` on text.
fn formatted_body(message: &Message) -> String {
    let color = message.color;
    format!(
        "<font data-mx-color=\"{color}\" color=\"{color}\">■</font> {}",
        message.html()
    )
}

#[cfg(test)]
mod tests {
    use lookout::{Instance, Outgoing, Service};
    use lookout_testkit::assert_failed;
    use lookout_testkit::{deliver_one, fixture, fixture_json};
    use serde_json::{Value, json};

    const TOKEN: &str = "syt_secret_token_123";

    fn options(homeserver: &str, room_id: &str) -> Value {
        json!({
            "homeserver": homeserver,
            "access_token": TOKEN,
            "room_id": room_id,
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_room_out_of_reach_disables_the_target() {
        use lookout::Outcome;
        use lookout_testkit::{Reply, outcome_of_reply};
        let options = options("https://matrix.example.org", "!room:example.org");
        let item = fixture_json("item");
        let forbidden = json!({"errcode": "M_FORBIDDEN", "error": "User not in room"});
        let reply = Reply::status(403).body(forbidden.to_string());
        let outcome = outcome_of_reply("matrix", options.clone(), &item, reply, TOKEN).await;
        let Outcome::Disabled { reason, status } = outcome else {
            panic!("not disabled: {outcome:?}");
        };
        assert_eq!(status, 403);
        assert!(reason.contains("Matrix: the bot may not post"), "{reason}");
        let other = json!({"errcode": "M_BAD_JSON", "error": "…"});
        let reply = Reply::status(400).body(other.to_string());
        let outcome = outcome_of_reply("matrix", options, &item, reply, TOKEN).await;
        assert_failed(&outcome, None, "");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_too_large_fails_for_good_saying_so() {
        use lookout_testkit::{Reply, outcome_of_reply};
        let options = options("https://matrix.example.org", "!room:example.org");
        let too_large = json!({"errcode": "M_TOO_LARGE", "error": "event too large"});
        let reply = Reply::status(413).body(too_large.to_string());
        let item = fixture_json("item");
        let outcome = outcome_of_reply("matrix", options, &item, reply, TOKEN).await;
        assert_failed(&outcome, Some(413), "the message was too large");
    }

    fn instance(room_id: &str) -> Instance {
        let options = options("https://matrix.example.org", room_id);
        Instance::new("matrix", "matrix", options.as_object().unwrap()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn puts_an_html_notice_into_the_room() {
        let options = |server: &lookout_testkit::CaptureServer| {
            options(&format!("{}/", server.url()), "!room:example.org")
        };
        let (_, request) =
            deliver_one("matrix", options, &fixture_json("item-markup"), TOKEN).await;
        assert_eq!(request.method, "PUT");
        let txn = request
            .path
            .strip_prefix("/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/")
            .unwrap_or_else(|| panic!("unexpected path {}", request.path));
        assert!(txn.starts_with("lookout.msg_"), "{txn}");
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );

        let body = request.json();
        assert_eq!(body["msgtype"], "m.notice");
        assert_eq!(body["format"], "org.matrix.custom.html");
        let html = body["formatted_body"].as_str().unwrap();
        // The title's markup arrives as text, not as tags.
        assert!(
            html.contains("&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>&"), "{html}");
        assert!(html.contains("data-mx-color=\"#96be60\""), "{html}");
        let plain = body["body"].as_str().unwrap();
        assert!(plain.contains("<b>&\"x\"</b>"), "{plain}");
    }

    #[test]
    fn a_room_alias_is_refused_with_a_hint() {
        let instance = instance("#team:example.org");
        let event = fixture("item");
        let job = instance.job(&event, "msg_a");
        let err = super::Matrix.build(&job).unwrap_err();
        assert!(err.to_string().contains("not a room ID"), "{err}");
    }

    /// What `lookout docs matrix` shows: both shapes of room id, and what a 401 or a
    /// 403 does.
    #[test]
    fn the_docs_show_v12_room_ids_and_what_disables_the_target() {
        let registration = lookout::service::find("matrix").expect("registered");
        let docs = lookout::docs::service_markdown(registration);
        assert!(
            docs.contains("`!AE7_Te7zXB0a-4tyMVrsgqJ4QX6qDlNAB4gxgTjBvE0`"),
            "{docs}"
        );
        assert!(docs.contains("`!AbCdEf:example.org`"), "{docs}");
        assert!(docs.contains("A `401` with `M_UNKNOWN_TOKEN`"), "{docs}");
        assert!(docs.contains("disables the target"), "{docs}");
    }

    /// Rooms of version 12 and later have ids without `:server`.
    #[test]
    fn a_room_id_without_a_server_part_is_accepted() {
        let instance = instance("!AE7_Te7zXB0a-4tyMVrsgqJ4QX6qDlNAB4gxgTjBvE0");
        let event = fixture("item");
        let job = instance.job(&event, "msg_a");
        let built = super::Matrix.build(&job).expect("a v12 room id builds");
        let Outgoing::Http(request) = &built[0] else {
            panic!("not HTTP");
        };
        assert!(
            request.url.path().starts_with(
                "/_matrix/client/v3/rooms/%21AE7_Te7zXB0a-4tyMVrsgqJ4QX6qDlNAB4gxgTjBvE0/send/"
            ),
            "{}",
            request.url
        );
    }

    #[test]
    fn the_transaction_id_is_stable_per_delivery() {
        let instance = instance("!room:example.org");
        let event = fixture("comment");
        let path = |id: &str| {
            let job = instance.job(&event, id);
            match &super::Matrix.build(&job).unwrap()[0] {
                Outgoing::Http(request) => request.url.path().to_owned(),
                other => panic!("not HTTP: {other:?}"),
            }
        };
        assert_eq!(path("msg_a"), path("msg_a"));
        assert_ne!(path("msg_a"), path("msg_b"));
    }

    #[test]
    fn a_rate_limited_answer_asks_for_its_wait_in_milliseconds() {
        use lookout::Registered as _;
        use lookout::delivery::Answer;
        let wait = |body: &[u8]| {
            super::Matrix
                .registration()
                .wait_in(&Answer::new(429, body))
        };
        let body = br#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":2500}"#;
        assert_eq!(wait(body), Some(std::time::Duration::from_millis(2500)));
        assert_eq!(wait(br#"{"retry_after":5}"#), None);
    }
}
