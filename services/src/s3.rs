//! The `s3` service (Amazon S3 and S3-compatible object storage). Its Markdown install
//! docs are the doc comments on the struct registered below; `lookout docs s3` shows
//! them.

use std::time::{Duration, SystemTime};

use lookout::prelude::*;
use lookout::request::Signing;
use lookout::request::signing::AwsSigner;
use sha2::{Digest, Sha256};

lookout::service! {
    /// Amazon S3 (and S3-compatible object storage)
    ///
    /// Writes every event to a bucket as one object: the payload exactly as Sprint.ly
    /// sent it (`application/json`), under a key made from a template, by default
    /// `{product}/{model}/{date}/{delivery_id}.json` (`1111/Item/2026-12-07/msg_….json`).
    /// Use it to keep an archive, or to feed Athena, a data lake or a batch job. Works
    /// with any store that speaks the S3 API with AWS Signature Version 4 (MinIO, Ceph,
    /// Cloudflare R2, Backblaze B2, …) through `endpoint`.
    ///
    /// Lookout calls `PutObject`: `PUT /{key}` to `https://{bucket}.s3.{region}.amazonaws.com`
    /// (with `endpoint`: `PUT /{bucket}/{key}` there, path-style), signed with AWS
    /// Signature Version 4, with the body's SHA-256 in `x-amz-content-sha256` and the
    /// event (`Item.created`) in the metadata `x-amz-meta-event`.
    ///
    /// 1. In the AWS console, open **Amazon S3 → Buckets** and create a bucket (or pick
    ///    one). Put its name in `bucket` and its region in `region`.
    /// 2. In **IAM**, create a user (or a role for temporary credentials) for Lookout with
    ///    this one permission, on this one bucket:
    ///
    ///    ```json
    ///    {
    ///      "Version": "2012-10-17",
    ///      "Statement": [{
    ///        "Effect": "Allow",
    ///        "Action": "s3:PutObject",
    ///        "Resource": "arn:aws:s3:::sprintly-events/*"
    ///      }]
    ///    }
    ///    ```
    /// 3. Create an access key for that user and put it in `access_key_id` and
    ///    `secret_access_key` (with temporary credentials, also `session_token`).
    /// 4. Optionally set `object_path`, the template of each object's key. Its placeholders:
    ///    `{product}` (the product's id), `{model}`, `{action}`, `{date}` (the day the
    ///    delivery was made, UTC, `2026-12-07`: the same on every retry) and
    ///    `{delivery_id}`, which every key must hold, so that no event overwrites
    ///    another. Around them, letters, digits, `-`, `_`, `.`, `~` and `/`.
    /// 5. For another S3-compatible store, a bucket whose name holds dots, a VPC
    ///    endpoint, or an emulator, set `endpoint` to the store's address
    ///    (`https://s3.us-east-1.amazonaws.com`, `https://minio.example.com:9000`).
    ///
    /// A retried delivery writes the same key again, so the bucket holds each event
    /// once. A bucket that no longer exists (`NoSuchBucket`) disables the destination;
    /// refused credentials fail without retrying; `SlowDown` and `5xx` answers are
    /// retried.
    pub struct S3;

    category: Broker,
    events: &["*"],
    // REST-XML errors: <Error><Code>NoSuchBucket</Code><Message>…</Message></Error>
    // (docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html), a bucket in another
    // region in a 301; refused credentials and `SlowDown` are read as for every AWS API.
    answers: Answers::aws("S3", &[
        Means::gone(&["NoSuchBucket"], "the bucket does not exist"),
        Means::try_again(&["ServiceUnavailable", "InternalError"], "S3 could not take the object now"),
        Means::refused(
            &[
                "AllAccessDisabled",
                "AuthorizationHeaderMalformed",
                "PermanentRedirect",
                "InvalidBucketName",
                "AccountProblem",
                "EntityTooLarge",
            ],
            "the bucket or the object was refused",
        ),
    ]),
    // docs.aws.amazon.com/AmazonS3/latest/userguide/upload-objects.html: one PUT
    // uploads at most 5 GiB.
    limits: Limits::refuse(&[Limit::body(5 * 1024 * 1024 * 1024, Unit::Bytes)]),
    schema: Schema::new(OPTIONS),
    example: r#"bucket = "sprintly-events"
region = "us-east-1"
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
object_path = "sprintly/{product}/{model}-{action}/{delivery_id}.json"
# Optional: the default for the region.
endpoint = "https://s3.us-east-1.amazonaws.com""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string("bucket", "The bucket's name.")
        .public()
        .destination()
        .checked(check_bucket),
    AwsSigner::REGION_OPTION,
    AwsSigner::ACCESS_KEY_ID_OPTION,
    AwsSigner::SECRET_ACCESS_KEY_OPTION,
    AwsSigner::SESSION_TOKEN_OPTION,
    OptionSpec::string(
        "object_path",
        "Each object's key: `{product}`, `{model}`, `{action}`, `{date}` and `{delivery_id}` (required) in letters, digits, `-_.~/`.",
    )
    .public()
    .default(DEFAULT_KEY)
    .checked(check_key_template),
    AwsSigner::endpoint_option(
        "Where to send the API requests, if not to the region's endpoint (VPC endpoints, \
         S3-compatible stores, emulators).",
    ),
];

const DEFAULT_KEY: &str = "{product}/{model}/{date}/{delivery_id}.json";
const SIGNING_NAME: &str = "s3";
const PLACEHOLDERS: [&str; 5] = ["product", "model", "action", "date", "delivery_id"];

/// A bucket's name: 3 to 63 lower-case letters, digits, `.` and `-`, starting and
/// ending with a letter or digit.
fn check_bucket(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-');
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if (3..=63).contains(&name.len())
        && name.chars().all(allowed)
        && ends(name.chars().next())
        && ends(name.chars().last())
    {
        Ok(())
    } else {
        Err("expected a bucket's name: 3 to 63 lower-case letters, digits, `.` or `-`".into())
    }
}

/// One piece of a key template.
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// The template's pieces, or why it is not one.
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let literal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '/');
    let mut pieces = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let Some(open) = rest.find('{') else {
            pieces.push(Piece::Text(rest));
            break;
        };
        pieces.push(Piece::Text(&rest[..open]));
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| "a `{` is not closed".to_owned())?;
        let name = &rest[open + 1..open + close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{}}}` (known: {})",
                name.chars().take(32).collect::<String>(),
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ));
        }
        pieces.push(Piece::Placeholder(name));
        rest = &rest[open + close + 1..];
    }
    for piece in &pieces {
        if let Piece::Text(text) = piece
            && let Some(bad) = text.chars().find(|c| !literal(*c))
        {
            return Err(format!(
                "`{}` is not allowed in a key (letters, digits, `-_.~/` and placeholders)",
                bad.escape_default()
            ));
        }
    }
    Ok(pieces)
}

fn check_key_template(template: &str) -> Result<(), String> {
    let pieces = pieces(template)?;
    if !pieces
        .iter()
        .any(|p| matches!(p, Piece::Placeholder("delivery_id")))
    {
        return Err("must hold `{delivery_id}`, or each event would overwrite the last".into());
    }
    let bare = template.replace(['{', '}'], "");
    if template.len() > 512
        || template.starts_with('/')
        || template.contains("//")
        || bare.split('/').any(|s| s == "." || s == "..")
    {
        return Err("expected a relative key: no leading `/`, no `//`, `.` or `..`".into());
    }
    Ok(())
}

impl Service for S3 {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let options = job.options;
        let bucket = options.str("bucket").unwrap_or_default();
        let key = object_key(job)?;
        let key_segments: Vec<&str> = key.split('/').collect();
        let url = match options.str("endpoint") {
            // Path-style: every S3-compatible store takes it.
            Some(base) => {
                let segments: Vec<&str> = std::iter::once(bucket).chain(key_segments).collect();
                endpoint(base, &segments)
            }
            None => {
                let region = options.str("region").unwrap_or_default();
                endpoint(
                    &format!("https://{bucket}.s3.{region}.amazonaws.com/"),
                    &key_segments,
                )
            }
        }
        .map_err(|e| BuildError::Invalid(format!("endpoint: {e}")))?;
        let body = job.event.raw().to_owned();
        let digest: String = Sha256::digest(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let region = options.str("region").unwrap_or_default();
        let signer = AwsSigner::from_options(options, region, SIGNING_NAME);
        let request = HttpRequest::put(url)
            .text("application/json", body)
            .header("x-amz-content-sha256", digest)
            .header("x-amz-meta-event", job.event.kind())
            .signed(Signing::AwsSigV4(signer));
        Ok(vec![request.into()])
    }
}

/// The key template filled in. Every value is kept to the characters a key template
/// allows, so a key is one path of plain segments (signed as written: S3 does not
/// encode a key twice, and plain segments read the same either way).
fn object_key(job: &Job<'_>) -> Result<String, BuildError> {
    let template = job.options.str("object_path").unwrap_or(DEFAULT_KEY);
    let pieces =
        pieces(template).map_err(|why| BuildError::Invalid(format!("object_path: {why}")))?;
    let event = job.event;
    let mut key = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => key.push_str(text),
            Piece::Placeholder(name) => {
                let value = match name {
                    "product" => event.product.id.to_string(),
                    "model" => event.model.clone(),
                    "action" => event.action.clone(),
                    "date" => delivery_date(job.delivery_id),
                    _ => job.delivery_id.to_owned(),
                };
                key.push_str(&plain(&value));
            }
        }
    }
    Ok(key)
}

/// `value` with every character a key may not hold as `-` (and never `.` or `..`).
fn plain(value: &str) -> String {
    let kept: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if kept.is_empty() || kept.chars().all(|c| c == '.') {
        "-".to_owned()
    } else {
        kept
    }
}

/// The UTC day a delivery was made, read from its id (`msg_` and a time-ordered UUID,
/// whose first 48 bits are Unix milliseconds), so that a retry writes the same key.
/// An id that holds no time (a preview's) gives `YYYY-MM-DD`.
fn delivery_date(delivery_id: &str) -> String {
    let hex = delivery_id.strip_prefix("msg_").unwrap_or_default();
    let millis = (hex.len() == 32 && hex.as_bytes()[12] == b'7')
        .then(|| u64::from_str_radix(&hex[..12], 16).ok())
        .flatten();
    let Some(millis) = millis else {
        return "YYYY-MM-DD".to_owned();
    };
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
    let days = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// well-known algorithm, `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_disabled, assert_verdicts};
    use serde_json::{Value, json};

    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/S3SecretKey00000000";

    fn options() -> Value {
        json!({
            "bucket": "sprintly-events",
            "region": "eu-west-1",
            "access_key_id": "AKIAS3KEYID000000000",
            "secret_access_key": SECRET_KEY,
        })
    }

    #[tokio::test]
    async fn puts_the_payload_under_its_key_with_the_body_hash_signed() {
        let (_, sent) = deliver_one("s3", |_| options(), &fixture_json("item"), SECRET_KEY).await;
        assert_eq!(sent.method, "PUT");
        assert_eq!(
            sent.header("host"),
            Some("sprintly-events.s3.eu-west-1.amazonaws.com")
        );
        let (_, file) = sent.path.rsplit_once('/').unwrap();
        let id = file.strip_suffix(".json").unwrap();
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
        let date = super::delivery_date(id);
        assert!(date.starts_with("20"), "{date}");
        assert_eq!(sent.path, format!("/1111/Item/{date}/{id}.json"));
        assert_eq!(sent.header("x-amz-meta-event"), Some("Item.created"));
        assert_eq!(sent.text(), fixture_json("item"));
        let authorization = sent.header("authorization").unwrap();
        assert!(
            authorization.contains("x-amz-content-sha256;x-amz-date;x-amz-meta-event"),
            "{authorization}"
        );
    }

    #[test]
    fn key_templates_are_checked() {
        use super::check_key_template as check;
        assert!(check(super::DEFAULT_KEY).is_ok());
        assert!(
            check("{product}/x.json")
                .unwrap_err()
                .contains("{delivery_id}")
        );
        assert!(
            check("{delivery_id}/{user}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            check("a b/{delivery_id}")
                .unwrap_err()
                .contains("not allowed")
        );
        assert!(check("/{delivery_id}").unwrap_err().contains("relative"));
        assert!(check("../{delivery_id}").unwrap_err().contains("relative"));
        assert!(check("{delivery_id").unwrap_err().contains("not closed"));
    }

    #[test]
    fn the_date_comes_from_the_delivery_id() {
        // 0x0193a0b5c400 ms is 2024-12-07T10:41:27Z; the 13th digit is the version, 7.
        assert_eq!(
            super::delivery_date("msg_0193a0b5c40070008000000000000000"),
            "2024-12-07"
        );
        assert_eq!(super::delivery_date("msg_test"), "YYYY-MM-DD");
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(super::plain("a/b c"), "a-b-c");
        assert_eq!(super::plain(".."), "-");
    }

    fn error(code: &str) -> Vec<u8> {
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>no</Message></Error>")
            .into_bytes()
    }

    #[tokio::test]
    async fn a_deleted_bucket_disables_the_destination() {
        let reply = Reply::status(404).body(error("NoSuchBucket"));
        let outcome =
            outcome_of_reply("s3", options(), &fixture_json("item"), reply, SECRET_KEY).await;
        assert_disabled(&outcome, Some(404), "the bucket does not exist");
    }

    #[test]
    fn slow_down_is_retried_and_refused_credentials_are_final() {
        let cases = [
            (503, "SlowDown", "retry"),
            (403, "InvalidAccessKeyId", "final"),
            (403, "SignatureDoesNotMatch", "final"),
            (301, "PermanentRedirect", "final"),
            (500, "SomethingElse", "by status"),
        ];
        assert_verdicts(&super::S3, error, &cases);
    }
}
