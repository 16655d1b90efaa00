//! The `kinesis` service (Amazon Kinesis Data Streams). Its Markdown install docs are
//! the doc comments on the struct registered below; `lookout docs kinesis` shows them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lookout::payload::PayloadPath;
use lookout::prelude::*;
use lookout::request::signing::AwsSigner;

lookout::service! {
    /// Amazon Kinesis Data Streams
    ///
    /// Puts every event on an Amazon Kinesis data stream as one record, for your own
    /// consumers (Lambda, Firehose, Flink, the KCL). Each record's data is the payload
    /// exactly as Sprint.ly sent it; its partition key is taken from the payload (by
    /// default the product's id, so each product's events stay in order on one shard).
    ///
    /// Lookout calls `PutRecord` with the AWS JSON 1.1 protocol: `POST /` to
    /// `https://kinesis.{region}.amazonaws.com` with
    /// `X-Amz-Target: Kinesis_20131202.PutRecord`, signed with AWS Signature Version 4.
    ///
    /// 1. In the AWS console, open **Kinesis → Data streams** and create a stream (or
    ///    pick one). Put its name in `stream` and its region in `region`.
    /// 2. In **IAM**, create a user (or a role for temporary credentials) for Lookout with
    ///    this one permission, on this one stream:
    ///
    ///    ```json
    ///    {
    ///      "Version": "2012-10-17",
    ///      "Statement": [{
    ///        "Effect": "Allow",
    ///        "Action": "kinesis:PutRecord",
    ///        "Resource": "arn:aws:kinesis:us-east-1:123456789012:stream/sprintly"
    ///      }]
    ///    }
    ///    ```
    ///
    ///    If the stream is encrypted with a customer managed KMS key, also allow
    ///    `kms:GenerateDataKey` on that key.
    /// 3. Create an access key for that user and put it in `access_key_id` and
    ///    `secret_access_key` (with temporary credentials, also `session_token`).
    /// 4. Optionally set `partition_path` to a dotted path into the payload
    ///    (`attributes.number`, `product.id`; the default): events with the same value
    ///    go to the same shard, in order. An event where the path leads nowhere uses the
    ///    product's id.
    /// 5. For a VPC endpoint, or an emulator such as LocalStack or moto, set `endpoint`
    ///    to its address.
    ///
    /// A stream that no longer exists (`ResourceNotFoundException`) disables the
    /// destination; refused credentials and a disabled KMS key fail without retrying;
    /// throttling (`ProvisionedThroughputExceededException`, `LimitExceededException`)
    /// and `5xx` answers are retried. Kinesis has no message attributes: consumers that
    /// drop duplicates can key on the payload's own fields.
    pub struct Kinesis;

    category: Broker,
    events: &["*"],
    // JSON 1.1 errors: {"__type": "…#ResourceNotFoundException", "message": "…"}
    // (docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecord.html#API_PutRecord_Errors);
    // refused credentials and throttling are read as for every AWS API.
    answers: Answers::aws("Kinesis", &[
        Means::gone(&["ResourceNotFoundException"], "the stream does not exist"),
        Means::try_again(
            &["ProvisionedThroughputExceededException", "LimitExceededException", "KMSThrottlingException"],
            "the stream's or its key's throughput is exceeded",
        ),
        Means::refused(
            &[
                "KMSAccessDeniedException",
                "KMSDisabledException",
                "KMSInvalidStateException",
                "KMSNotFoundException",
                "KMSOptInRequired",
            ],
            "the stream's KMS key cannot be used",
        ),
        Means::refused(&["InvalidArgumentException"], "the record was refused"),
    ]),
    // docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecord.html: a record's
    // data blob is at most 1 MiB before base64 (1,398,104 characters once encoded), and
    // a partition key at most 256 characters (cut to it in `partition_key`).
    limits: Limits::refuse(&[
        Limit::field("/Data", 1_398_104, Unit::Bytes),
        Limit::field("/PartitionKey", 256, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"stream = "sprintly"
region = "us-east-1"
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# Optional: the default for the region.
endpoint = "https://kinesis.us-east-1.amazonaws.com""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string("stream", "The data stream's name.")
        .public()
        .checked(check_stream_name),
    AwsSigner::REGION_OPTION,
    AwsSigner::ACCESS_KEY_ID_OPTION,
    AwsSigner::SECRET_ACCESS_KEY_OPTION,
    AwsSigner::SESSION_TOKEN_OPTION,
    OptionSpec::string(
        "partition_path",
        "A dotted path into the payload whose value is each record's partition key.",
    )
    .public()
    .default("product.id")
    .checked(PayloadPath::check),
    AwsSigner::endpoint_option(
        "Where to send the API requests, if not to the region's endpoint (VPC endpoints, emulators).",
    ),
];

/// The Kinesis API's signing name, host prefix and the target of `PutRecord`.
const SIGNING_NAME: &str = "kinesis";
const TARGET: &str = "Kinesis_20131202.PutRecord";

/// A partition key is 1 to 256 Unicode characters.
const PARTITION_KEY_CHARS: usize = 256;

/// A stream's name: 1 to 128 letters, digits, `_`, `-` and `.`.
fn check_stream_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !name.is_empty() && name.len() <= 128 && name.chars().all(allowed) {
        Ok(())
    } else {
        Err("expected a stream's name: 1 to 128 letters, digits, `_`, `-` or `.`".into())
    }
}

impl Service for Kinesis {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let options = job.options;
        let event = job.event;
        let body = json!({
            "StreamName": options.str("stream").unwrap_or_default(),
            "Data": BASE64.encode(event.raw()),
            "PartitionKey": partition_key(job)?,
        });
        let request = AwsSigner::json_call(job, SIGNING_NAME, TARGET, body.to_string())?;
        Ok(vec![request.into()])
    }
}

/// The value at the `partition_path` path (the product's id where it leads nowhere),
/// kept within Kinesis's 256 characters.
fn partition_key(job: &Job<'_>) -> Result<String, BuildError> {
    let text = job.options.str("partition_path").unwrap_or("product.id");
    let path = PayloadPath::parse(text)
        .map_err(|why| BuildError::Invalid(format!("partition_path: {why}")))?;
    let key = job
        .event
        .value_at(&path)
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| job.event.product.id.to_string());
    Ok(key.chars().take(PARTITION_KEY_CHARS).collect())
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_aws_verdicts, assert_disabled};
    use serde_json::{Value, json};

    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/KinesisSecretKey000";

    fn options() -> Value {
        json!({
            "stream": "sprintly",
            "region": "eu-west-1",
            "access_key_id": "AKIAKINESISKEY000000",
            "secret_access_key": SECRET_KEY,
        })
    }

    #[tokio::test]
    async fn puts_a_signed_record_keyed_by_the_product() {
        let (_, sent) =
            deliver_one("kinesis", |_| options(), &fixture_json("item"), SECRET_KEY).await;
        assert_eq!(sent.header("host"), Some("kinesis.eu-west-1.amazonaws.com"));
        assert_eq!(
            sent.header("x-amz-target"),
            Some("Kinesis_20131202.PutRecord")
        );
        let authorization = sent.header("authorization").unwrap();
        assert!(
            authorization.contains("/eu-west-1/kinesis/aws4_request"),
            "{authorization}"
        );
        let body = sent.json();
        assert_eq!(body["StreamName"], "sprintly");
        assert_eq!(body["PartitionKey"], "1111");
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD
            .decode(body["Data"].as_str().unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(data).unwrap(), fixture_json("item"));
    }

    #[tokio::test]
    async fn the_partition_key_comes_from_the_path() {
        let mut options = options();
        options["partition_path"] = json!("attributes.number");
        let (_, sent) =
            deliver_one("kinesis", |_| options, &fixture_json("item"), SECRET_KEY).await;
        let item: Value = serde_json::from_str(&fixture_json("item")).unwrap();
        assert_eq!(
            sent.json()["PartitionKey"],
            item["attributes"]["number"].to_string()
        );
    }

    fn error(kind: &str) -> Vec<u8> {
        json!({"__type": kind, "message": "no"})
            .to_string()
            .into_bytes()
    }

    #[tokio::test]
    async fn a_deleted_stream_disables_the_destination() {
        let reply = Reply::status(400).body(error("ResourceNotFoundException"));
        let outcome = outcome_of_reply(
            "kinesis",
            options(),
            &fixture_json("item"),
            reply,
            SECRET_KEY,
        )
        .await;
        assert_disabled(&outcome, None, "the stream does not exist");
    }

    #[test]
    fn throttling_is_retried_and_refused_credentials_are_final() {
        let cases = [
            (400, "ProvisionedThroughputExceededException", "retry"),
            (400, "LimitExceededException", "retry"),
            (400, "UnrecognizedClientException", "final"),
            (400, "KMSDisabledException", "final"),
            (500, "InternalFailure", "by status"),
        ];
        assert_aws_verdicts(&super::Kinesis, error, &cases);
    }
}
