//! AWS APIs' error answers, read once for every AWS service: a service declares which
//! of its codes mean "gone" and which it retries ([`AwsAnswers`]); the credential and
//! throttling codes every AWS API shares are known here.
//! (<https://docs.aws.amazon.com/kinesis/latest/APIReference/CommonErrors.html>, and the
//! same page of each API.)

use serde_json::Value;
use url::Url;

use super::Verdict;
use crate::error::BuildError;
use crate::job::Job;
use crate::options::OptionSpec;

/// The region option of an AWS service whose endpoint follows from it: checked to be a
/// region's name, so that it cannot change the endpoint's host into another.
pub const REGION_OPTION: OptionSpec = OptionSpec::string("region", "The AWS region (`us-east-1`).")
    .public()
    .destination()
    .checked(check_region);

/// Where an AWS service sends instead of the region's endpoint (VPC endpoints,
/// S3-compatible stores, emulators).
pub const ENDPOINT_OPTION: OptionSpec = OptionSpec::url(
    "endpoint",
    "Where to send the API requests, if not to the region's endpoint (VPC endpoints, \
     S3-compatible stores, emulators).",
)
.public()
.optional();

/// A region's name: lower-case letters, digits and `-` (`us-east-1`, `eu-central-2`).
pub fn check_region(region: &str) -> Result<(), String> {
    let name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !region.is_empty() && region.len() <= 32 && region.chars().all(name) {
        Ok(())
    } else {
        Err("expected an AWS region's name, like `us-east-1`".into())
    }
}

/// The API's endpoint: the `endpoint` option when set, else
/// `https://{host_prefix}.{region}.amazonaws.com/`.
pub fn api_endpoint(job: &Job<'_>, host_prefix: &str) -> Result<Url, BuildError> {
    if job.options.str(ENDPOINT_OPTION.name).is_some() {
        return job.url(ENDPOINT_OPTION.name);
    }
    let region = job.options.str(REGION_OPTION.name).unwrap_or_default();
    format!("https://{host_prefix}.{region}.amazonaws.com/")
        .parse()
        .map_err(|e| BuildError::Invalid(format!("region: {e}")))
}

/// An AWS error answer: its code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub code: String,
    pub message: String,
}

impl AwsError {
    /// From the JSON protocols (1.0, 1.1): `{"__type": "com.amazonaws.kinesis#Code",
    /// "message": "…"}` (some APIs write `Message`).
    pub fn from_json(body: &[u8]) -> Option<AwsError> {
        let error: Value = serde_json::from_slice(body).ok()?;
        let kind = error["__type"].as_str()?;
        let message = error["message"]
            .as_str()
            .or_else(|| error["Message"].as_str())
            .unwrap_or_default();
        Some(AwsError {
            code: kind.rsplit('#').next().unwrap_or(kind).to_owned(),
            message: message.to_owned(),
        })
    }

    /// From the REST-XML protocol (S3): `<Error><Code>NoSuchBucket</Code>
    /// <Message>…</Message></Error>`.
    pub fn from_xml(body: &[u8]) -> Option<AwsError> {
        let text = String::from_utf8_lossy(body);
        let code = between(&text, "<Code>", "</Code>")?;
        let message = between(&text, "<Message>", "</Message>").unwrap_or_default();
        Some(AwsError {
            code: code.to_owned(),
            message: message.to_owned(),
        })
    }

    /// What this error means for `api` (`Kinesis`), as the service declared.
    pub fn verdict(&self, api: &str, answers: &AwsAnswers) -> Verdict {
        let code = self.code.as_str();
        if let Some((_, what)) = answers.gone.iter().find(|(c, _)| *c == code) {
            return Verdict::Gone(format!("{api}: {what} ({code})"));
        }
        let reason = format!("{api}: {code}: {}", self.message);
        if THROTTLED.contains(&code) || answers.throttled.contains(&code) {
            Verdict::Refused {
                reason,
                retry: true,
            }
        } else if REFUSED_CREDENTIALS.contains(&code) || answers.refused.contains(&code) {
            Verdict::Refused {
                reason,
                retry: false,
            }
        } else {
            Verdict::ByStatus
        }
    }
}

/// What one AWS API's own codes mean, beyond those every API shares.
pub struct AwsAnswers {
    /// Codes meaning the destination no longer exists, each with what to say.
    pub gone: &'static [(&'static str, &'static str)],
    /// Codes worth another try later (the API's own throttling).
    pub throttled: &'static [&'static str],
    /// Codes that another try will not change.
    pub refused: &'static [&'static str],
}

/// Throttling, as every AWS API may say it.
const THROTTLED: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "RequestThrottled",
    "TooManyRequestsException",
    "SlowDown",
];

/// Credentials refused, as every AWS API may say it: another try will not change it.
const REFUSED_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredToken",
    "ExpiredTokenException",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidAccessKeyId",
    "RequestExpired",
    "RequestTimeTooSkewed",
];

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWERS: AwsAnswers = AwsAnswers {
        gone: &[("ResourceNotFoundException", "the stream does not exist")],
        throttled: &["ProvisionedThroughputExceededException"],
        refused: &["KMSDisabledException"],
    };

    #[test]
    fn json_and_xml_errors_read_alike() {
        let json =
            br#"{"__type": "com.amazonaws.kinesis#ResourceNotFoundException", "message": "no"}"#;
        let error = AwsError::from_json(json).unwrap();
        assert_eq!(
            error.verdict("Kinesis", &ANSWERS),
            Verdict::Gone("Kinesis: the stream does not exist (ResourceNotFoundException)".into())
        );
        let xml = b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>";
        let error = AwsError::from_xml(xml).unwrap();
        assert_eq!(
            error.verdict("S3", &ANSWERS),
            Verdict::Refused {
                reason: "S3: SlowDown: Reduce your rate".into(),
                retry: true
            }
        );
        let own = br#"{"__type": "KMSDisabledException", "Message": "off"}"#;
        assert!(matches!(
            AwsError::from_json(own)
                .unwrap()
                .verdict("Kinesis", &ANSWERS),
            Verdict::Refused { retry: false, .. }
        ));
        let other = br#"{"__type": "InternalFailure"}"#;
        assert_eq!(
            AwsError::from_json(other)
                .unwrap()
                .verdict("Kinesis", &ANSWERS),
            Verdict::ByStatus
        );
        assert_eq!(AwsError::from_json(b"<html>"), None);
    }
}
