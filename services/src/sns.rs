//! The `sns` service (Amazon SNS). Its Markdown install docs are the doc comments on the
//! struct registered below; `lookout docs sns` shows them.

use lookout::prelude::*;
use lookout::request::Signing;
use lookout::request::signing::AwsSigner;
use lookout::text::budget::truncate;

lookout::service! {
    /// Amazon SNS
    ///
    /// Publishes every event to an Amazon SNS topic, which fans it out to its
    /// subscribers (SQS queues, Lambda functions, HTTPS endpoints, email, SMS). Each
    /// message is the payload exactly as Sprint.ly sent it (or, with
    /// `body = "message"`, the event written out as plain text), with two message
    /// attributes that subscription filter policies can match: `delivery_id`, the same
    /// on every retry of one delivery, so consumers can drop duplicates, and `event`
    /// (`Item.created`, `Comment.created`, …). The subject (shown by email
    /// subscriptions) is the item's title.
    ///
    /// Lookout calls `Publish` (API version 2010-03-31) with the AWS query protocol: a
    /// form `POST /` to `https://sns.{region}.amazonaws.com`, signed with AWS Signature
    /// Version 4. The region is the topic's, read from its ARN.
    ///
    /// 1. In the AWS console, open **Amazon SNS → Topics** and create a topic (or pick
    ///    one). Copy its ARN (`arn:aws:sns:us-east-1:123456789012:sprintly`) into
    ///    `topic_arn`, and subscribe what should receive the events.
    /// 2. In **IAM**, create a user (or a role for temporary credentials) for Lookout with
    ///    this one permission, on this one topic:
    ///
    ///    ```json
    ///    {
    ///      "Version": "2012-10-17",
    ///      "Statement": [{
    ///        "Effect": "Allow",
    ///        "Action": "sns:Publish",
    ///        "Resource": "arn:aws:sns:us-east-1:123456789012:sprintly"
    ///      }]
    ///    }
    ///    ```
    ///
    ///    If the topic is encrypted with a customer managed KMS key, also allow
    ///    `kms:GenerateDataKey` and `kms:Decrypt` on that key.
    /// 3. Create an access key for that user (**Security credentials → Create access
    ///    key**) and put it in `access_key_id` and `secret_access_key`. With temporary
    ///    credentials (STS), also set `session_token`; they expire, so refresh them.
    /// 4. Choose what the messages hold: `body = "payload"` (the default: the event's
    ///    JSON, byte for byte) or `body = "message"` (plain text for people).
    /// 5. `endpoint` is `https://sns.{region}.amazonaws.com` for the topic's region when
    ///    left out; set it for a VPC endpoint or an emulator such as LocalStack or moto.
    ///
    /// FIFO topics (names ending in `.fifo`) get `MessageGroupId` = the product
    /// (`sprintly-product-{id}`, so each product's events stay in order) and
    /// `MessageDeduplicationId` = the delivery id.
    ///
    /// A topic that no longer exists (`NotFound`) disables the destination; refused
    /// credentials (`InvalidClientTokenId`, `SignatureDoesNotMatch`,
    /// `AuthorizationError`) fail without retrying; throttling and `5xx` answers are
    /// retried. SNS refuses messages over 256 KiB.
    pub struct Sns;

    category: Broker,
    events: &["*"],
    // Query protocol errors: <ErrorResponse><Error><Code>NotFound</Code>…
    // (https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html); refused
    // credentials and throttling are read as for every AWS API.
    answers: Answers::aws("SNS", &[Means::gone(&["NotFound"], "the topic does not exist")]),
    // docs.aws.amazon.com/sns/latest/api/API_Publish.html: a subject under 100 characters,
    // a message at most 256 KiB.
    limits: Limits::refuse(&[
        Limit::field("/Subject", 99, Unit::Chars),
        Limit::field("/Message", 262_144, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"topic_arn = "arn:aws:sns:us-east-1:123456789012:sprintly"
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# Optional: the default for the topic's region.
endpoint = "https://sns.us-east-1.amazonaws.com""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string(
        "topic_arn",
        "The topic's ARN (`arn:aws:sns:{region}:{account}:{name}`).",
    )
    .public()
    .destination(),
    AwsSigner::BODY_OPTION,
    AwsSigner::endpoint_option(
        "Where to send the API requests, if not to the topic region's (VPC endpoints, emulators).",
    ),
    AwsSigner::ACCESS_KEY_ID_OPTION,
    AwsSigner::SECRET_ACCESS_KEY_OPTION,
    AwsSigner::SESSION_TOKEN_OPTION,
];

/// The SNS API's signing name and the API version `Publish` is called with.
const SIGNING_NAME: &str = "sns";
const API_VERSION: &str = "2010-03-31";

/// SNS subjects are ASCII, without line breaks, and under 100 characters
/// (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html).
const SUBJECT_CHARS: usize = 99;

impl Service for Sns {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let options = job.options;
        let event = job.event;
        let topic = Topic::parse(options.str("topic_arn").unwrap_or_default())?;
        let (text, subject) = match options.str("body") {
            Some("message") => {
                let message = Message::from_event(event)?;
                (message.plain(), message.title)
            }
            _ => {
                let title = Message::from_event(event).map(|m| m.title);
                (
                    event.forwarded().to_string(),
                    title.unwrap_or_else(|_| event.kind()),
                )
            }
        };
        let mut fields: Vec<(String, String)> = [
            ("Action", "Publish".to_owned()),
            ("Version", API_VERSION.to_owned()),
            ("TopicArn", topic.arn.to_owned()),
            ("Message", text),
            ("Subject", subject_line(&subject)),
        ]
        .map(|(name, value)| (name.to_owned(), value))
        .into();
        let attributes = [
            ("delivery_id", job.delivery_id.to_owned()),
            ("event", event.kind()),
        ];
        for (n, (name, value)) in attributes.into_iter().enumerate() {
            let entry = format!("MessageAttributes.entry.{}", n + 1);
            fields.push((format!("{entry}.Name"), name.to_owned()));
            fields.push((format!("{entry}.Value.DataType"), "String".to_owned()));
            fields.push((format!("{entry}.Value.StringValue"), value));
        }
        if topic.name.ends_with(".fifo") {
            let group = format!("sprintly-product-{}", event.product.id);
            fields.push(("MessageGroupId".to_owned(), group));
            fields.push((
                "MessageDeduplicationId".to_owned(),
                job.delivery_id.to_owned(),
            ));
        }
        let endpoint = match options.str("endpoint") {
            Some(_) => job.url("endpoint")?,
            None => topic
                .regional_endpoint()
                .parse()
                .map_err(|e| BuildError::Invalid(format!("topic_arn: {e}")))?,
        };
        let signer = AwsSigner::from_options(options, topic.region, SIGNING_NAME);
        let request = HttpRequest::post(endpoint)
            .form(fields)
            .signed(Signing::AwsSigV4(signer));
        Ok(vec![request.into()])
    }
}

/// A topic ARN's parts: `arn:{partition}:sns:{region}:{account}:{name}`.
struct Topic<'a> {
    arn: &'a str,
    partition: &'a str,
    region: &'a str,
    name: &'a str,
}

impl<'a> Topic<'a> {
    fn parse(arn: &'a str) -> Result<Topic<'a>, BuildError> {
        match arn.split(':').collect::<Vec<_>>()[..] {
            ["arn", partition, "sns", region, _account, name]
                if is_region(region) && !name.is_empty() =>
            {
                Ok(Topic {
                    arn,
                    partition,
                    region,
                    name,
                })
            }
            _ => Err(BuildError::Invalid(
                "topic_arn: not an SNS topic ARN (arn:aws:sns:{region}:{account}:{name})".into(),
            )),
        }
    }

    /// `https://sns.{region}.amazonaws.com/` (`.amazonaws.com.cn` in the China regions);
    /// [`Topic::parse`] let only letters, digits and dashes into the region.
    fn regional_endpoint(&self) -> String {
        let domain = match self.partition {
            "aws-cn" => "amazonaws.com.cn",
            _ => "amazonaws.com",
        };
        format!("https://sns.{}.{domain}/", self.region)
    }
}

/// A region name as AWS writes them (`us-east-1`, `cn-north-1`).
fn is_region(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The subject as SNS takes it: printable ASCII only, on one line, cut to its limit.
fn subject_line(title: &str) -> String {
    let ascii: String = title
        .chars()
        .filter(|c| c.is_ascii_graphic() || c.is_whitespace())
        .collect();
    let one_line = ascii.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&one_line, SUBJECT_CHARS - 3)
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_aws_verdicts, assert_disabled};
    use serde_json::{Value, json};

    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/SnsSecretKey0000000";
    const TOKEN: &str = "FwoGZXIvYXdzEBsaDSnsSessionToken0000";
    const ARN: &str = "arn:aws:sns:ap-southeast-2:123456789012:sprintly";

    fn options(arn: &str) -> Value {
        json!({
            "topic_arn": arn,
            "access_key_id": "AKIASNSKEYID00000000",
            "secret_access_key": SECRET_KEY,
            "session_token": TOKEN,
        })
    }

    #[tokio::test]
    async fn publishes_a_signed_form_to_the_topic_region() {
        let (report, sent) =
            deliver_one("sns", |_| options(ARN), &fixture_json("item"), SECRET_KEY).await;
        assert!(!lookout_testkit::shown(&report).contains(TOKEN));
        assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/"));
        assert_eq!(
            sent.header("host"),
            Some("sns.ap-southeast-2.amazonaws.com")
        );
        assert_eq!(sent.header("x-amz-security-token"), Some(TOKEN));
        let authorization = sent.header("authorization").unwrap();
        assert!(
            authorization.contains("/ap-southeast-2/sns/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="),
            "{authorization}"
        );
        let field = |name: &str| sent.form_field(name).unwrap_or_default();
        assert_eq!(field("Action"), "Publish");
        assert_eq!(field("Version"), "2010-03-31");
        assert_eq!(field("TopicArn"), ARN);
        assert_eq!(field("Message"), fixture_json("item"));
        assert!(
            field("Subject").starts_with("Story #"),
            "{}",
            field("Subject")
        );
        assert_eq!(field("MessageAttributes.entry.1.Name"), "delivery_id");
        assert_eq!(field("MessageAttributes.entry.1.Value.DataType"), "String");
        assert!(field("MessageAttributes.entry.1.Value.StringValue").starts_with("msg_"));
        assert_eq!(field("MessageAttributes.entry.2.Name"), "event");
        assert_eq!(
            field("MessageAttributes.entry.2.Value.StringValue"),
            "Item.created"
        );
        assert!(
            sent.form_field("MessageGroupId").is_none(),
            "standard topic"
        );
    }

    #[tokio::test]
    async fn fifo_topics_get_a_group_and_a_deduplication_id() {
        let fifo = "arn:aws-cn:sns:cn-north-1:123456789012:sprintly.fifo";
        let (_, sent) = deliver_one(
            "sns",
            |_| options(fifo),
            &fixture_json("deploy"),
            SECRET_KEY,
        )
        .await;
        assert_eq!(sent.header("host"), Some("sns.cn-north-1.amazonaws.com.cn"));
        assert_eq!(
            sent.form_field("MessageGroupId").as_deref(),
            Some("sprintly-product-1111")
        );
        assert_eq!(
            sent.form_field("MessageDeduplicationId"),
            sent.form_field("MessageAttributes.entry.1.Value.StringValue")
        );
    }

    #[test]
    fn subjects_are_one_line_of_ascii_under_100_characters() {
        assert_eq!(super::subject_line("Caf\u{e9} <b>\n\tdone"), "Caf <b> done");
        let long = super::subject_line(&"x".repeat(300));
        assert_eq!(long.len(), 99);
        assert!(long.ends_with("..."));
    }

    #[test]
    fn bad_arns_are_refused_by_name() {
        for arn in [
            "arn:aws:sqs:us-east-1:1:q",
            "sprintly",
            "arn:aws:sns::1:t",
            "arn:aws:sns:evil.example/x:1:t",
        ] {
            assert!(super::Topic::parse(arn).is_err(), "{arn}");
        }
    }

    fn error(code: &str) -> Vec<u8> {
        format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>no</Message></Error></ErrorResponse>")
            .into_bytes()
    }

    #[tokio::test]
    async fn a_deleted_topic_disables_the_destination() {
        let reply = Reply::status(404).body(error("NotFound"));
        let outcome = outcome_of_reply(
            "sns",
            options(ARN),
            &fixture_json("item"),
            reply,
            SECRET_KEY,
        )
        .await;
        assert_disabled(&outcome, None, "the topic does not exist");
    }

    #[test]
    fn refused_credentials_are_final_and_throttling_is_retried() {
        let cases = [
            (403, "AuthorizationError", "final"),
            (400, "Throttled", "retry"),
        ];
        assert_aws_verdicts(&super::Sns, error, &cases);
    }
}
