//! The `twilio` service (Twilio SMS). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs twilio` shows them.

use lookout::prelude::*;
use lookout::text::budget::truncate;

lookout::service! {
    /// Twilio SMS
    ///
    /// Sends each new item, comment, block, favorite and deploy as a text message (SMS)
    /// through [Twilio](https://www.twilio.com): what happened, with the link to the item,
    /// and the comment or description, in plain text.
    ///
    /// 1. In the Twilio Console (<https://console.twilio.com>), copy the **Account SID**
    ///    (`AC…`) into `account_sid` and the **Auth Token** into `auth_token`. The token is
    ///    a secret; Lookout sends both as HTTP Basic credentials and treats the SID as a
    ///    secret too. (An API key works as well: its SID (`SK…`) is then the user, but the
    ///    URL still needs the account SID, so prefer the account's own token here.)
    /// 2. Buy or pick a phone number able to send SMS (**Phone Numbers → Manage → Active
    ///    numbers**) and put it in `from`, in E.164 format (`+15017122661`); or put the SID
    ///    of a Messaging Service (`MG…`) in `messaging_service_sid` instead.
    /// 3. Set `to` to the number that should get the messages, in E.164 format. Phone
    ///    numbers are personal data: Lookout redacts `to` from reports like a secret. For
    ///    several people, configure one `twilio` service per number.
    ///
    /// Lookout uses the Messages resource of Twilio's REST API, version 2010-04-01
    /// (`POST https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Messages.json`,
    /// a form with `To`, `From` and `Body`). A message may have at most 1,600 characters,
    /// so longer ones are cut; Twilio splits and bills them in 160-character segments
    /// (70 with characters outside GSM-7). When Twilio answers that the credentials are
    /// wrong (20003), the account is not found (20404), the recipient opted out by
    /// replying STOP (21610) or `to` is not a valid mobile number (21211, 21614), Lookout
    /// disables the target instead of retrying.
    pub struct Twilio;

    category: Push,
    // Errors are `{"code": 21610, "message": "…", "more_info": "…", "status": 400}`;
    // these codes say the same message will never get through.
    answers: Answers::json("Twilio", "/code", "", &[
        Means::gone(&["20003"], "the credentials were refused"),
        Means::gone(&["20404"], "the account was not found"),
        Means::gone(&["21211"], "`to` is not a valid phone number"),
        Means::gone(&["21610"], "the recipient opted out (replied STOP)"),
        Means::gone(&["21614"], "`to` is not a mobile number"),
    ]),
    // twilio.com/docs/messaging/api/message-resource: `Body` at most 1,600 characters.
    limits: Limits::cut(&[
        Limit::field("/Body", 1_600, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"account_sid = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
auth_token = "your_auth_token"
from = "+15017122661"
to = "+15558675310""#,
}

const API_BASE: &str = "https://api.twilio.com/2010-04-01";

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string("account_sid", "The Account SID (`AC…`).").secret(),
    OptionSpec::string("auth_token", "The account's Auth Token.").secret(),
    OptionSpec::string("from", "The Twilio number to send from (E.164).")
        .public()
        .optional(),
    OptionSpec::string(
        "messaging_service_sid",
        "A Messaging Service (`MG…`) to send through, instead of `from`.",
    )
    .public()
    .optional(),
    OptionSpec::string("to", "The number to send to (E.164).").secret(),
];

/// "The text of the message you want to send. Can be up to 1,600 characters in length"
/// (twilio.com/docs/messaging/api/message-resource#create-a-message-resource); longer
/// ones are refused.
const BODY_CHARS: usize = 1600;

impl Service for Twilio {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let options = job.options;
        let option = |name| options.str(name).unwrap_or_default();
        let sender = match (options.str("from"), options.str("messaging_service_sid")) {
            (Some(from), None) => ("From", from),
            (None, Some(service)) => ("MessagingServiceSid", service),
            _ => {
                return Err(BuildError::Invalid(
                    "set exactly one of from and messaging_service_sid".into(),
                ));
            }
        };
        let form = [
            ("To", option("to").to_owned()),
            (sender.0, sender.1.to_owned()),
            ("Body", truncate(&sms_text(&message), BODY_CHARS - 3)),
        ];
        let sid = option("account_sid");
        let url = endpoint(API_BASE, &["Accounts", sid, "Messages.json"])
            .map_err(|e| BuildError::Invalid(format!("account_sid: {e}")))?;
        Ok(vec![
            HttpRequest::post(url)
                .basic_auth(sid, option("auth_token"))
                .form(form)
                .into(),
        ])
    }
}

/// What happened with its link, then the quote or the deploy's items: the parts worth
/// paying for in a text message (the fields are left out).
fn sms_text(message: &Message) -> String {
    let with_urls = |rich| Dialect::PLAIN_WITH_URLS.rich(rich);
    let mut text = with_urls(&message.headline);
    if let Some(quote) = &message.quote {
        text.push_str(&format!("\n\n\"{quote}\""));
    }
    for item in &message.list {
        text.push_str(&format!("\n- {}", with_urls(item)));
    }
    text
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_disabled, assert_failed};
    use serde_json::{Value, json};

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "twilioAuthTokenSecret0042";
    const TO: &str = "+15558675310";

    fn options() -> Value {
        json!({"account_sid": SID, "auth_token": TOKEN, "from": "+15017122661", "to": TO})
    }

    #[tokio::test]
    async fn posts_a_form_with_basic_auth() {
        let (report, sent) =
            deliver_one("twilio", |_| options(), &fixture_json("comment"), TOKEN).await;
        lookout_testkit::assert_hidden(&report, SID);
        lookout_testkit::assert_hidden(&report, TO);
        assert_eq!(sent.header("host"), Some("api.twilio.com"));
        assert_eq!(
            sent.path,
            format!("/2010-04-01/Accounts/{SID}/Messages.json")
        );
        // base64 of `{SID}:{TOKEN}`
        let basic =
            "QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0d2lsaW9BdXRoVG9rZW5TZWNyZXQwMDQy";
        assert_eq!(
            sent.header("authorization"),
            Some(format!("Basic {basic}").as_str())
        );
        assert_eq!(sent.form_field("To").as_deref(), Some(TO));
        assert_eq!(sent.form_field("From").as_deref(), Some("+15017122661"));
        let body = sent.form_field("Body").unwrap();
        assert_eq!(
            body,
            "Joe S. commented on the task #1212 - Change the spinner to our glowing running man. (http://sprint.ly/i/1/91594/)\n\n\"Hey guys, what's the status on this?\""
        );
    }

    #[tokio::test]
    async fn a_messaging_service_may_send_instead() {
        let mut options = options();
        options["messaging_service_sid"] = json!("MG0123");
        options.as_object_mut().unwrap().remove("from");
        let (_, sent) = deliver_one("twilio", |_| options, &fixture_json("deploy"), TOKEN).await;
        assert_eq!(
            sent.form_field("MessagingServiceSid").as_deref(),
            Some("MG0123")
        );
        assert!(sent.form_field("From").is_none());
        let body = sent.form_field("Body").unwrap();
        assert!(
            body.contains("\n- Task #1213 (http://sprint.ly/i/1111/1213/)"),
            "{body}"
        );
    }

    #[test]
    fn a_long_message_is_cut_to_1600_characters() {
        let mut event: Value = serde_json::from_str(&fixture_json("deploy")).unwrap();
        let item = event["attributes"]["items"][0].clone();
        event["attributes"]["items"] = Value::Array(vec![item; 60]);
        let instance =
            lookout::Instance::new("twilio", "twilio", options().as_object().unwrap()).unwrap();
        let event = lookout::Event::parse(&event.to_string()).unwrap();
        let preview = lookout::dispatch::preview_one(&event, &instance);
        let body = &preview.requests[0].body;
        let text = body[2]["Body"].as_str().unwrap();
        assert_eq!(text.chars().count(), super::BODY_CHARS, "{text}");
        assert!(text.ends_with("..."));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_opted_out_recipient_or_refused_credentials_disable_the_target() {
        let item = fixture_json("item");
        for (status, code, why) in [
            (
                400,
                21610,
                "Twilio: the recipient opted out (replied STOP) (21610)",
            ),
            (401, 20003, "Twilio: the credentials were refused (20003)"),
        ] {
            let answer = json!({"code": code, "message": "…", "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status});
            let reply = Reply::status(status).body(answer.to_string());
            let outcome = outcome_of_reply("twilio", options(), &item, reply, TOKEN).await;
            assert_disabled(&outcome, None, why);
        }
        // Too many requests (20429) is a wait, not an end.
        let reply = Reply::status(429).body(r#"{"code":20429,"message":"Too Many Requests"}"#);
        let outcome = outcome_of_reply("twilio", options(), &item, reply, TOKEN).await;
        assert_failed(&outcome, Some(429), "");
    }
}
