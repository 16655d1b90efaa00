//! The `eventbridge` service (Amazon EventBridge). Its Markdown install docs are the doc
//! comments on the struct registered below; `lookout docs eventbridge` shows them.

use lookout::prelude::*;
use lookout::request::signing::AwsSigner;

lookout::service! {
    /// Amazon EventBridge
    ///
    /// Puts every event on an Amazon EventBridge event bus, where your rules route it
    /// (to Lambda, SQS, Step Functions, another account…). Each entry's `detail` is the
    /// payload exactly as Sprint.ly sent it, its `detail-type` the model and action
    /// (`Item.created`, `Comment.created`, …) and its `source` is `source` (by default
    /// `sprintly`), so a rule can match on any of them:
    ///
    /// ```json
    /// {"source": ["sprintly"], "detail-type": ["Item.created"], "detail": {"product": {"id": [1111]}}}
    /// ```
    ///
    /// Lookout calls `PutEvents` with the AWS JSON 1.1 protocol: `POST /` to
    /// `https://events.{region}.amazonaws.com` with `X-Amz-Target: AWSEvents.PutEvents`,
    /// signed with AWS Signature Version 4.
    ///
    /// 1. In the AWS console, open **Amazon EventBridge → Event buses**. Use the
    ///    `default` bus, or create one and put its name (or ARN) in `bus`. Put its
    ///    region in `region`.
    /// 2. Create a rule on that bus with an event pattern like the one above, and a
    ///    target for the events it matches.
    /// 3. In **IAM**, create a user (or a role for temporary credentials) for Lookout with
    ///    this one permission, on this one bus:
    ///
    ///    ```json
    ///    {
    ///      "Version": "2012-10-17",
    ///      "Statement": [{
    ///        "Effect": "Allow",
    ///        "Action": "events:PutEvents",
    ///        "Resource": "arn:aws:events:us-east-1:123456789012:event-bus/default"
    ///      }]
    ///    }
    ///    ```
    /// 4. Create an access key for that user and put it in `access_key_id` and
    ///    `secret_access_key` (with temporary credentials, also `session_token`).
    /// 5. For a VPC endpoint, or an emulator such as LocalStack or moto, set `endpoint`
    ///    to its address.
    ///
    /// EventBridge answers `200` even when it refuses an entry: Lookout reads the answer's
    /// `FailedEntryCount` and the entry's `ErrorCode`, and retries throttling and
    /// internal failures. A bus that no longer exists (`ResourceNotFoundException`)
    /// disables the destination; refused credentials fail without retrying. An entry is
    /// at most 256 KiB.
    pub struct EventBridge;

    category: Broker,
    events: &["*"],
    answers: ANSWERS,
    // docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html: an entry
    // (its detail, detail-type, source and bus) is at most 256 KiB.
    limits: Limits::refuse(&[
        Limit::total(&["/Entries/0/Detail", "/Entries/0/DetailType", "/Entries/0/Source"], 262_144, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"region = "us-east-1"
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
bus = "sprintly"
# Optional: the default for the region.
endpoint = "https://events.us-east-1.amazonaws.com""#,
}

const OPTIONS: &[OptionSpec] = &[
    AwsSigner::REGION_OPTION,
    AwsSigner::ACCESS_KEY_ID_OPTION,
    AwsSigner::SECRET_ACCESS_KEY_OPTION,
    AwsSigner::SESSION_TOKEN_OPTION,
    OptionSpec::string("bus", "The event bus's name or ARN.")
        .public()
        .default("default")
        .checked(check_bus),
    OptionSpec::string("source", "Each entry's `source`, for rules to match.")
        .public()
        .default("sprintly")
        .checked(check_source),
    AwsSigner::endpoint_option(
        "Where to send the API requests, if not to the region's endpoint (VPC endpoints, emulators).",
    ),
];

/// The EventBridge API's signing name, host prefix, and the target of `PutEvents`.
const SIGNING_NAME: &str = "events";
const TARGET: &str = "AWSEvents.PutEvents";

/// docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html: the
/// request's errors (JSON 1.1, `__type`), and the entries' `ErrorCode`s, which
/// [`refused_entry`] reads with the same table; refused credentials and throttling are
/// read as for every AWS API.
const ANSWERS: Answers = Answers::aws(
    "EventBridge",
    &[
        Means::gone(
            &["ResourceNotFoundException"],
            "the event bus does not exist",
        ),
        Means::try_again(
            &[
                "InternalFailure",
                "InternalException",
                "LimitExceededException",
            ],
            "EventBridge could not take the entry now",
        ),
        Means::refused(
            &["ValidationException", "MalformedDetail", "InvalidArgument"],
            "the entry was refused",
        ),
    ],
);

/// A bus's name (1 to 256 of letters, digits, `.`, `-`, `_`, `/`) or its ARN.
fn check_bus(bus: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':');
    if !bus.is_empty() && bus.len() <= 1600 && bus.chars().all(allowed) {
        Ok(())
    } else {
        Err("expected an event bus's name (`default`, `sprintly`) or ARN".into())
    }
}

/// A source: 1 to 256 printable characters; `aws.` is reserved for AWS's own events.
fn check_source(source: &str) -> Result<(), String> {
    if source.starts_with("aws.") {
        Err("sources starting with `aws.` are reserved for AWS".into())
    } else if source.is_empty() || source.len() > 256 || source.chars().any(char::is_control) {
        Err("expected 1 to 256 printable characters".into())
    } else {
        Ok(())
    }
}

impl Service for EventBridge {
    /// Error answers are declared ([`ANSWERS`]); this reads what a table cannot point
    /// to: an entry refused inside a `200`.
    fn verdict(&self, status: u16, answer_body: &[u8]) -> Verdict {
        if (200..300).contains(&status) {
            refused_entry(status, answer_body)
        } else {
            Verdict::ByStatus
        }
    }

    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let options = job.options;
        let event = job.event;
        let body = json!({
            "Entries": [{
                "Source": options.str("source").unwrap_or("sprintly"),
                "DetailType": event.kind(),
                "Detail": event.raw(),
                "EventBusName": options.str("bus").unwrap_or("default"),
            }],
        });
        let request = AwsSigner::json_call(job, SIGNING_NAME, TARGET, body.to_string())?;
        Ok(vec![request.into()])
    }
}

/// A `200` whose one entry was refused: `{"FailedEntryCount": 1, "Entries":
/// [{"ErrorCode": "…", "ErrorMessage": "…"}]}`, its code read with the declared table.
fn refused_entry(status: u16, answer_body: &[u8]) -> Verdict {
    let Ok(answer) = serde_json::from_slice::<Value>(answer_body) else {
        return Verdict::ByStatus;
    };
    if answer["FailedEntryCount"].as_u64().unwrap_or(0) == 0 {
        return Verdict::ByStatus;
    }
    let entry = &answer["Entries"][0];
    let code = entry["ErrorCode"].as_str().unwrap_or("unknown");
    let said = entry["ErrorMessage"].as_str().unwrap_or_default();
    match ANSWERS.code_means(code, said, status) {
        // An entry refused for a reason not known here: another try will not change it.
        Verdict::ByStatus => Verdict::Refused {
            reason: format!("EventBridge: {code}: {said}"),
            retry: false,
        },
        verdict => verdict,
    }
}

#[cfg(test)]
mod tests {
    use lookout::delivery::Answer;
    use lookout::{Registered as _, Verdict};
    use lookout_testkit::{Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_aws_verdicts, assert_disabled, assert_failed};
    use serde_json::{Value, json};

    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/EventsSecretKey0000";

    fn options() -> Value {
        json!({
            "region": "eu-west-1",
            "access_key_id": "AKIAEVENTSKEY0000000",
            "secret_access_key": SECRET_KEY,
            "bus": "sprintly",
        })
    }

    /// What delivering an item comes to when EventBridge answers `reply`.
    async fn outcome_of(reply: Reply) -> lookout::Outcome {
        let item = fixture_json("item");
        outcome_of_reply("eventbridge", options(), &item, reply, SECRET_KEY).await
    }

    #[tokio::test]
    async fn puts_one_entry_with_the_payload_as_detail() {
        let (_, sent) = deliver_one(
            "eventbridge",
            |_| options(),
            &fixture_json("comment"),
            SECRET_KEY,
        )
        .await;
        assert_eq!(sent.header("host"), Some("events.eu-west-1.amazonaws.com"));
        assert_eq!(sent.header("x-amz-target"), Some("AWSEvents.PutEvents"));
        let entry = &sent.json()["Entries"][0];
        assert_eq!(entry["Source"], "sprintly");
        assert_eq!(entry["DetailType"], "Comment.created");
        assert_eq!(entry["EventBusName"], "sprintly");
        assert_eq!(entry["Detail"], fixture_json("comment"));
    }

    #[tokio::test]
    async fn a_refused_entry_inside_a_200_fails_and_throttling_is_retried() {
        let refused = json!({"FailedEntryCount": 1, "Entries": [{"ErrorCode": "MalformedDetail", "ErrorMessage": "bad"}]});
        let outcome = outcome_of(Reply::status(200).body(refused.to_string())).await;
        assert_failed(&outcome, Some(200), "MalformedDetail");
        let throttled =
            json!({"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException"}]});
        let verdict = |body: Value| {
            let body = body.to_string();
            super::EventBridge
                .registration()
                .verdict_on(&Answer::new(200, body.as_bytes()))
        };
        assert!(matches!(
            verdict(throttled),
            Verdict::Refused { retry: true, .. }
        ));
        let fine = json!({"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]});
        assert_eq!(verdict(fine), Verdict::ByStatus);
    }

    #[tokio::test]
    async fn a_deleted_bus_disables_the_destination() {
        let body = json!({"__type": "ResourceNotFoundException", "message": "Event bus sprintly does not exist."});
        let outcome = outcome_of(Reply::status(400).body(body.to_string())).await;
        assert_disabled(&outcome, None, "the event bus does not exist");
    }

    #[test]
    fn request_errors_are_read_as_declared() {
        let error = |code: &str| {
            json!({"__type": code, "message": "no"})
                .to_string()
                .into_bytes()
        };
        let cases = [
            (400, "ValidationException", "final"),
            (400, "ThrottlingException", "retry"),
            (400, "ExpiredTokenException", "final"),
        ];
        assert_aws_verdicts(&super::EventBridge, error, &cases);
    }
}
