//! The `sqs` service (Amazon SQS). Its Markdown install docs are the doc comments on the
//! struct registered below; `lookout docs sqs` shows them.

use lookout::prelude::*;
use lookout::request::Signing;
use lookout::request::signing::AwsSigner;

lookout::service! {
    /// Amazon SQS
    ///
    /// Puts every event on an Amazon SQS queue, for your own consumers to read. Each
    /// message is the payload exactly as Sprint.ly sent it (or, with
    /// `body = "message"`, the event written out as plain text), with two message
    /// attributes: `delivery_id`, the same on every retry of one delivery, so consumers
    /// can drop duplicates, and `event` (`Item.created`, `Comment.created`, …).
    ///
    /// Lookout calls `SendMessage` (API version 2012-11-05) with the AWS JSON 1.0
    /// protocol: `POST /` to the queue's endpoint (`https://sqs.{region}.amazonaws.com`)
    /// with `X-Amz-Target: AmazonSQS.SendMessage`, signed with AWS Signature Version 4.
    ///
    /// 1. In the AWS console, open **Amazon SQS → Queues** and create a queue (or pick
    ///    one). Copy its URL (`https://sqs.us-east-1.amazonaws.com/123456789012/sprintly`)
    ///    into `queue`, and its region (`us-east-1`) into `region`.
    /// 2. In **IAM**, create a user (or a role for temporary credentials) for Lookout with
    ///    this one permission, on this one queue:
    ///
    ///    ```json
    ///    {
    ///      "Version": "2012-10-17",
    ///      "Statement": [{
    ///        "Effect": "Allow",
    ///        "Action": "sqs:SendMessage",
    ///        "Resource": "arn:aws:sqs:us-east-1:123456789012:sprintly"
    ///      }]
    ///    }
    ///    ```
    ///
    ///    If the queue is encrypted with a customer managed KMS key, also allow
    ///    `kms:GenerateDataKey` and `kms:Decrypt` on that key.
    /// 3. Create an access key for that user (**Security credentials → Create access
    ///    key**) and put it in `access_key_id` and `secret_access_key`. With temporary
    ///    credentials (STS), also set `session_token`; they expire, so refresh them.
    /// 4. Choose what the messages hold: `body = "payload"` (the default: the event's
    ///    JSON, byte for byte) or `body = "message"` (plain text for people).
    /// 5. For a VPC endpoint, or an emulator such as LocalStack or moto, set `endpoint`
    ///    to its address (`https://vpce-….sqs.us-east-1.vpce.amazonaws.com`). By
    ///    default requests go to the host of the queue URL.
    ///
    /// FIFO queues (names ending in `.fifo`) get `MessageGroupId` = the product
    /// (`sprintly-product-{id}`, so each product's events stay in order) and
    /// `MessageDeduplicationId` = the delivery id, so SQS itself drops a retried
    /// delivery's duplicate within five minutes.
    ///
    /// A queue that no longer exists (`QueueDoesNotExist`) disables the destination;
    /// refused credentials (`InvalidClientTokenId`, `SignatureDoesNotMatch`,
    /// `AccessDenied`) fail without retrying; throttling and `5xx` answers are retried.
    /// SQS refuses messages over its size limit (256 KiB by default, set per queue).
    pub struct Sqs;

    category: Broker,
    events: &["*"],
    // JSON protocol errors: {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": …}
    // (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html);
    // refused credentials and throttling are read as for every AWS API.
    answers: Answers::aws("SQS", &[Means::gone(
        &["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"],
        "the queue does not exist",
    )]),
    // A queue's default MaximumMessageSize: 256 KiB (up to 1 MiB when raised).
    limits: Limits::refuse(&[
        Limit::field("/MessageBody", 262_144, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"queue = "https://sqs.us-east-1.amazonaws.com/123456789012/sprintly"
region = "us-east-1"
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "queue",
        "The queue's URL (`https://sqs.{region}.amazonaws.com/{account}/{name}`).",
    )
    .public(),
    OptionSpec::string("region", "The queue's AWS region (`us-east-1`).")
        .public()
        .destination(),
    AwsSigner::BODY_OPTION,
    AwsSigner::endpoint_option(
        "Where to send the API requests, if not to the queue URL's host (VPC endpoints, emulators).",
    ),
    AwsSigner::ACCESS_KEY_ID_OPTION,
    AwsSigner::SECRET_ACCESS_KEY_OPTION,
    AwsSigner::SESSION_TOKEN_OPTION,
];

/// The SQS API's signing name and the target of `SendMessage` in its JSON protocol.
const SIGNING_NAME: &str = "sqs";
const TARGET: &str = "AmazonSQS.SendMessage";
/// The AWS JSON 1.0 protocol's content type, exactly (no `charset`: SQS and its
/// emulators compare it whole).
const JSON_1_0: &str = "application/x-amz-json-1.0";

impl Service for Sqs {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let options = job.options;
        let queue_url = job.url("queue")?;
        let event = job.event;
        let mut body = json!({
            "QueueUrl": queue_url.as_str(),
            "MessageBody": message_body(job)?,
            "MessageAttributes": {
                "delivery_id": {"DataType": "String", "StringValue": job.delivery_id},
                "event": {"DataType": "String", "StringValue": event.kind()},
            },
        });
        if queue_url.path().ends_with(".fifo") {
            body["MessageGroupId"] = json!(format!("sprintly-product-{}", event.product.id));
            body["MessageDeduplicationId"] = json!(job.delivery_id);
        }
        let endpoint = match options.str("endpoint") {
            Some(_) => job.url("endpoint")?,
            None => queue_url.join("/").expect("an http URL has a root"),
        };
        let region = options.str("region").unwrap_or_default();
        let signer = AwsSigner::from_options(options, region, SIGNING_NAME);
        let request = HttpRequest::post(endpoint)
            .text(JSON_1_0, body.to_string())
            .header("X-Amz-Target", TARGET)
            .signed(Signing::AwsSigV4(signer));
        Ok(vec![request.into()])
    }
}

/// The payload as sent, or the event as plain text, with the characters SQS refuses
/// (controls other than tab and line breaks) left out
/// (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html).
fn message_body(job: &Job<'_>) -> Result<String, BuildError> {
    let text = match job.options.str("body") {
        Some("message") => job.message()?.plain(),
        _ => job.event.forwarded().to_string(),
    };
    let allowed = |c: &char| !c.is_control() || matches!(c, '\t' | '\n' | '\r');
    Ok(text.chars().filter(allowed).collect())
}

#[cfg(test)]
mod tests {
    use lookout::{Registered as _, Verdict};
    use lookout_testkit::{Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_aws_verdicts, assert_disabled};
    use serde_json::{Value, json};

    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/SqsSecretKey0000000";
    const KEY_ID: &str = "AKIASQSKEYID00000000";

    fn options(queue: &str) -> Value {
        json!({
            "queue": format!("https://sqs.eu-west-1.amazonaws.com/123456789012/{queue}"),
            "region": "eu-west-1",
            "access_key_id": KEY_ID,
            "secret_access_key": SECRET_KEY,
        })
    }

    #[tokio::test]
    async fn sends_a_signed_json_1_0_request_to_the_queue_host() {
        let (report, sent) = deliver_one(
            "sqs",
            |_| options("sprintly"),
            &fixture_json("item"),
            SECRET_KEY,
        )
        .await;
        assert!(!lookout_testkit::shown(&report).contains(KEY_ID));
        assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/"));
        assert_eq!(sent.header("host"), Some("sqs.eu-west-1.amazonaws.com"));
        assert_eq!(
            sent.header("content-type"),
            Some("application/x-amz-json-1.0")
        );
        assert_eq!(sent.header("x-amz-target"), Some("AmazonSQS.SendMessage"));
        let authorization = sent.header("authorization").unwrap();
        let scope = format!("Credential={KEY_ID}/");
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 "),
            "{authorization}"
        );
        assert!(authorization.contains(&scope), "{authorization}");
        assert!(
            authorization.contains("/eu-west-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="),
            "{authorization}"
        );
        assert!(sent.header("x-amz-date").is_some());
        let body = sent.json();
        assert_eq!(
            body["QueueUrl"],
            "https://sqs.eu-west-1.amazonaws.com/123456789012/sprintly"
        );
        assert_eq!(body["MessageBody"], fixture_json("item"));
        assert_eq!(
            body["MessageAttributes"]["event"]["StringValue"],
            "Item.created"
        );
        let id = &body["MessageAttributes"]["delivery_id"];
        assert_eq!(id["DataType"], "String");
        assert!(id["StringValue"].as_str().unwrap().starts_with("msg_"));
        assert!(body.get("MessageGroupId").is_none(), "standard queue");
    }

    #[tokio::test]
    async fn fifo_queues_get_a_group_and_the_delivery_id_as_deduplication_id() {
        let mut options = options("sprintly.fifo");
        options["body"] = json!("message");
        let (_, sent) = deliver_one("sqs", |_| options, &fixture_json("comment"), SECRET_KEY).await;
        let body = sent.json();
        assert_eq!(body["MessageGroupId"], "sprintly-product-1111");
        assert_eq!(
            body["MessageDeduplicationId"],
            body["MessageAttributes"]["delivery_id"]["StringValue"]
        );
        let text = body["MessageBody"].as_str().unwrap();
        assert!(
            !text.starts_with('{'),
            "plain text, not the payload: {text}"
        );
    }

    fn error(kind: &str) -> Vec<u8> {
        json!({"__type": format!("com.amazonaws.sqs#{kind}"), "message": "no"})
            .to_string()
            .into_bytes()
    }

    #[tokio::test]
    async fn a_deleted_queue_disables_the_destination() {
        let reply = Reply::status(400).body(error("QueueDoesNotExist"));
        let outcome = outcome_of_reply(
            "sqs",
            options("q"),
            &fixture_json("item"),
            reply,
            SECRET_KEY,
        )
        .await;
        assert_disabled(&outcome, None, "the queue does not exist");
    }

    #[test]
    fn refused_credentials_are_final_and_throttling_is_retried() {
        let cases = [
            (403, "AccessDenied", "final"),
            (400, "ThrottlingException", "retry"),
        ];
        assert_aws_verdicts(&super::Sqs, error, &cases);
        let ok = lookout::delivery::Answer::new(200, b"{}");
        assert_eq!(super::Sqs.registration().verdict_on(&ok), Verdict::ByStatus);
    }
}
