//! Signing outgoing requests, per try: Standard Webhooks for webhooks, and AWS
//! Signature Version 4 for AWS APIs. Both cover the moment of sending, so neither can be
//! computed in advance.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use url::{Position, Url};

use crate::options::{OptionSpec, Options};

/// The prefix of a Standard Webhooks signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Decodes a `whsec_…` secret into its key bytes.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    BASE64
        .decode(encoded.trim())
        .map_err(|_| format!("the signing secret must be `{SECRET_PREFIX}` followed by base64"))
        .and_then(|key| {
            if key.len() < 16 {
                Err("the signing secret must hold at least 16 bytes of key".to_owned())
            } else {
                Ok(key)
            }
        })
}

/// Whether `secret` is a usable signing secret (for option validation).
pub fn check_secret(secret: &str) -> Result<(), String> {
    decode_secret(secret).map(drop)
}

/// Whether `text` is an RFC 3339 time (`2026-12-31T00:00:00Z`), for an expiry option.
pub fn check_expiry(text: &str) -> Result<(), String> {
    humantime::parse_rfc3339_weak(text.trim())
        .map(drop)
        .map_err(|_| format!("`{text}` is not a time like 2026-12-31T00:00:00Z"))
}

/// The secrets to sign with at `now`, during a rotation: every current one, and the
/// previous one until it expires (no expiry: until it is removed).
pub fn active_secrets<'a>(
    current: impl IntoIterator<Item = &'a str>,
    previous: Option<&'a str>,
    previous_expires: Option<&str>,
    now: std::time::SystemTime,
) -> Vec<&'a str> {
    let expired = previous_expires
        .and_then(|text| humantime::parse_rfc3339_weak(text.trim()).ok())
        .is_some_and(|expires| expires <= now);
    let previous = previous.filter(|_| !expired);
    current.into_iter().chain(previous).collect()
}

/// The names of the Standard Webhooks headers, in the order [`standard_webhooks`]
/// returns them: the message id, its Unix time in seconds, and the signatures.
pub const STANDARD_WEBHOOKS_HEADERS: [&str; 3] =
    ["webhook-id", "webhook-timestamp", "webhook-signature"];

/// The three headers that sign `body` as message `id` sent at `timestamp` (Unix seconds),
/// with one `v1,` signature per key, space-separated: during a rotation receivers that
/// hold either the old or the new secret accept the request.
pub fn standard_webhooks(
    keys: &[Vec<u8>],
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let signatures: Vec<String> = keys
        .iter()
        .map(|key| {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
        })
        .collect();
    let [id_header, timestamp_header, signature_header] = STANDARD_WEBHOOKS_HEADERS;
    [
        (id_header, id.to_owned()),
        (timestamp_header, timestamp.to_string()),
        (signature_header, signatures.join(" ")),
    ]
}

/// The credentials and scope of AWS Signature Version 4
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>).
#[derive(Clone)]
pub struct AwsSigner {
    pub region: String,
    /// The signing name of the API (`sqs`, `sns`).
    pub service: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials (STS) come with a session token, sent and signed as
    /// `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AwsSigner({}/{}, [redacted])", self.region, self.service)
    }
}

const AWS_ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What a preview shows in place of what only sending can compute.
pub const AT_SEND_TIME: &str = "(computed at send time)";

impl AwsSigner {
    /// The options every AWS service takes for its credentials, which
    /// [`AwsSigner::from_options`] reads: the access key id, its secret, and the session
    /// token of temporary credentials.
    pub const ACCESS_KEY_ID_OPTION: OptionSpec = OptionSpec::string(
        "access_key_id",
        "The access key id of the IAM user or role.",
    )
    .secret();
    pub const SECRET_ACCESS_KEY_OPTION: OptionSpec =
        OptionSpec::string("secret_access_key", "The secret access key.").secret();
    pub const SESSION_TOKEN_OPTION: OptionSpec = OptionSpec::string(
        "session_token",
        "The session token of temporary (STS) credentials.",
    )
    .secret()
    .optional();
    /// What each message of an AWS messaging service (SNS, SQS) holds.
    pub const BODY_OPTION: OptionSpec = OptionSpec::choice(
        "body",
        &["payload", "message"],
        "What each message holds: the payload as sent, or the event as plain text.",
    )
    .public()
    .default("payload");

    /// The option `endpoint`: where to send the API requests instead of the AWS host the
    /// service would use (VPC endpoints, emulators), as `description` says.
    pub const fn endpoint_option(description: &'static str) -> OptionSpec {
        OptionSpec::url("endpoint", description).public().optional()
    }

    /// The signer for the API `service` (its signing name) in `region`, with the
    /// credentials in the options every AWS service takes: `access_key_id`,
    /// `secret_access_key`, and `session_token` for temporary credentials.
    pub fn from_options(options: &Options, region: &str, service: &str) -> AwsSigner {
        let option = |spec: OptionSpec| options.str(spec.name).map(str::to_owned);
        AwsSigner {
            region: region.to_owned(),
            service: service.to_owned(),
            access_key_id: option(Self::ACCESS_KEY_ID_OPTION).unwrap_or_default(),
            secret_access_key: option(Self::SECRET_ACCESS_KEY_OPTION).unwrap_or_default(),
            session_token: option(Self::SESSION_TOKEN_OPTION),
        }
    }

    /// The headers that sign a request at `at`: `x-amz-date`, `x-amz-security-token`
    /// (temporary credentials) and `authorization`. `headers` are the other headers to
    /// sign besides `host`, which is taken from `url`: the host the request names, which
    /// stays in the `Host` header even when tests redirect the connection elsewhere.
    pub fn sign(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
        at: SystemTime,
    ) -> Vec<(&'static str, String)> {
        let amz_date: String = humantime::format_rfc3339_seconds(at)
            .to_string()
            .chars()
            .filter(|c| !matches!(c, '-' | ':'))
            .collect();
        let mut added = vec![("x-amz-date", amz_date.clone())];
        if let Some(token) = &self.session_token {
            added.push(("x-amz-security-token", token.clone()));
        }
        let host = &url[Position::BeforeHost..Position::AfterPort];
        let mut signed: Vec<(String, String)> = std::iter::once(("host", host))
            .chain(headers.iter().copied())
            .chain(added.iter().map(|(name, value)| (*name, value.as_str())))
            .map(|(name, value)| (name.to_ascii_lowercase(), canonical_value(value)))
            .collect();
        signed.sort();
        let names = signed_names(signed.iter().map(|(name, _)| name.as_str()));
        let canonical = [
            method.to_owned(),
            canonical_path(url),
            canonical_query(url),
            canonical_headers(&signed),
            names.clone(),
            hex(&Sha256::digest(body)),
        ]
        .join("\n");
        let scope = self.scope(&amz_date[..8]);
        let to_sign = format!(
            "{AWS_ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical))
        );
        let signature = hex(&hmac(&self.signing_key(&amz_date[..8]), to_sign.as_bytes()));
        let credential = format!("{}/{scope}", self.access_key_id);
        added.push((
            "authorization",
            format!(
                "{AWS_ALGORITHM} Credential={credential}, SignedHeaders={names}, Signature={signature}"
            ),
        ));
        added
    }

    /// The headers [`AwsSigner::sign`] adds, as a preview shows them: the same names and
    /// scope, without the key id, the date or the signature (a preview is the same on
    /// every run, and shows no credential).
    pub fn preview(&self, headers: &[(&str, &str)]) -> Vec<(&'static str, String)> {
        let mut added = vec![("x-amz-date", AT_SEND_TIME.to_owned())];
        if self.session_token.is_some() {
            added.push(("x-amz-security-token", crate::redact::REDACTED.to_owned()));
        }
        let mut names: Vec<String> = std::iter::once("host")
            .chain(headers.iter().map(|(name, _)| *name))
            .chain(added.iter().map(|(name, _)| *name))
            .map(str::to_ascii_lowercase)
            .collect();
        names.sort();
        let names = signed_names(names.iter().map(String::as_str));
        let scope = self.scope("(date)");
        let redacted = crate::redact::REDACTED;
        added.push((
            "authorization",
            format!(
                "{AWS_ALGORITHM} Credential={redacted}/{scope}, SignedHeaders={names}, Signature={AT_SEND_TIME}"
            ),
        ));
        added
    }

    fn scope(&self, date: &str) -> String {
        format!("{date}/{}/{}/aws4_request", self.region, self.service)
    }

    /// The key derived for one day, region and service.
    fn signing_key(&self, date: &str) -> Vec<u8> {
        let secret = format!("AWS4{}", self.secret_access_key);
        [date, &self.region, &self.service, "aws4_request"]
            .iter()
            .fold(secret.into_bytes(), |key, part| hmac(&key, part.as_bytes()))
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SigV4's percent-encoding: every byte but the unreserved `A-Z a-z 0-9 - _ . ~`.
fn aws_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The path as sent, each segment encoded once more: the rule for every AWS API but S3.
fn canonical_path(url: &Url) -> String {
    match url.path() {
        "" | "/" => "/".to_owned(),
        path => path
            .split('/')
            .map(aws_encode)
            .collect::<Vec<_>>()
            .join("/"),
    }
}

/// The query's pairs, decoded, encoded the SigV4 way, and sorted.
fn canonical_query(url: &Url) -> String {
    let mut pairs: Vec<String> = url
        .query_pairs()
        .map(|(name, value)| format!("{}={}", aws_encode(&name), aws_encode(&value)))
        .collect();
    pairs.sort();
    pairs.join("&")
}

/// A header value with its ends trimmed and its runs of spaces made one.
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `name:value` lines, sorted by name; a name sent twice has its values joined by commas.
fn canonical_headers(sorted: &[(String, String)]) -> String {
    let mut lines: Vec<(String, String)> = Vec::new();
    for (name, value) in sorted {
        match lines.last_mut() {
            Some((last, values)) if last == name => {
                values.push(',');
                values.push_str(value);
            }
            _ => lines.push((name.clone(), value.clone())),
        }
    }
    lines
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect()
}

/// The sorted names, each once, joined by `;`.
fn signed_names<'a>(sorted: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = sorted.collect();
    names.dedup();
    names.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification's reference implementations.
    #[test]
    fn matches_the_spec_example() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let [_, _, (_, signature)] = standard_webhooks(
            &[key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_active_key_signs_and_the_previous_one_expires() {
        let old = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let new = decode_secret("whsec_c2VjcmV0LWtleS1udW1iZXItdHdvIQ==").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let [_, _, (_, both)] = standard_webhooks(
            &[new, old],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        );
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");

        let at = |text: &str| humantime::parse_rfc3339(text).unwrap();
        let expires = Some("2026-12-31T00:00:00Z");
        let before = active_secrets(["new"], Some("old"), expires, at("2026-12-30T23:59:59Z"));
        assert_eq!(before, ["new", "old"]);
        let after = active_secrets(["new"], Some("old"), expires, at("2026-12-31T00:00:00Z"));
        assert_eq!(after, ["new"]);
        let open_ended = active_secrets(["new"], Some("old"), None, at("2030-01-01T00:00:00Z"));
        assert_eq!(open_ended, ["new", "old"]);
        assert!(check_expiry("2026-12-31T00:00:00Z").is_ok());
        assert!(check_expiry("next tuesday").is_err());
    }

    #[test]
    fn rejects_bad_secrets() {
        assert!(decode_secret("whsec_not base64!").is_err());
        assert!(decode_secret("whsec_YWJj").is_err());
    }
}

#[cfg(test)]
mod aws_tests {
    use super::*;

    // AWS's Signature Version 4 test suite (the `aws-signing-test-suite/v4` cases that
    // AWS publishes and its SDKs test against): every case signs with this key, in this
    // scope, at this time.
    fn suite_signer(session_token: Option<&str>) -> AwsSigner {
        AwsSigner {
            region: "us-east-1".into(),
            service: "service".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: session_token.map(str::to_owned),
        }
    }

    fn suite_time() -> SystemTime {
        humantime::parse_rfc3339("2015-08-30T12:36:00Z").unwrap()
    }

    /// The `authorization` header for a request of the suite.
    fn authorization(
        signer: &AwsSigner,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> String {
        let url = Url::parse(url).unwrap();
        let signed = signer.sign(method, &url, headers, body, suite_time());
        assert_eq!(signed[0], ("x-amz-date", "20150830T123600Z".to_owned()));
        signed
            .into_iter()
            .find(|(name, _)| *name == "authorization")
            .unwrap()
            .1
    }

    fn expected(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    const HOST: &str = "https://example.amazonaws.com";

    #[test]
    fn get_vanilla() {
        let got = authorization(&suite_signer(None), "GET", HOST, &[], b"");
        let want = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        assert_eq!(got, expected("host;x-amz-date", want));
    }

    #[test]
    fn post_vanilla() {
        let got = authorization(&suite_signer(None), "POST", HOST, &[], b"");
        let want = "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b";
        assert_eq!(got, expected("host;x-amz-date", want));
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let url = format!("{HOST}/?Param2=value2&Param1=value1");
        let got = authorization(&suite_signer(None), "GET", &url, &[], b"");
        let want = "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500";
        assert_eq!(got, expected("host;x-amz-date", want));
    }

    #[test]
    fn get_vanilla_utf8_query() {
        let url = format!("{HOST}/?\u{1234}=bar");
        let got = authorization(&suite_signer(None), "GET", &url, &[], b"");
        let want = "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04";
        assert_eq!(got, expected("host;x-amz-date", want));
    }

    #[test]
    fn get_header_value_trim() {
        let headers = [("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")];
        let got = authorization(&suite_signer(None), "GET", HOST, &headers, b"");
        let want = "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736";
        assert_eq!(got, expected("host;my-header1;my-header2;x-amz-date", want));
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let body = b"Param1=value1";
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Length", "13"),
            ("X-Amz-Content-Sha256", &hex(&Sha256::digest(body))),
        ];
        let got = authorization(&suite_signer(None), "POST", HOST, &headers, body);
        let want = "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b";
        let names = "content-length;content-type;host;x-amz-content-sha256;x-amz-date";
        assert_eq!(got, expected(names, want));
    }

    #[test]
    fn get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let signer = suite_signer(Some(token));
        let url = Url::parse(HOST).unwrap();
        let signed = signer.sign("GET", &url, &[], b"", suite_time());
        assert_eq!(signed[1], ("x-amz-security-token", token.to_owned()));
        let want = "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8";
        assert_eq!(
            signed[2].1,
            expected("host;x-amz-date;x-amz-security-token", want)
        );
    }

    #[test]
    fn previews_show_no_key_no_date_no_signature() {
        let signer = suite_signer(Some("TokenSecret"));
        let preview = signer.preview(&[("X-Amz-Target", "AmazonSQS.SendMessage")]);
        let shown = format!("{preview:?} {signer:?}");
        assert!(!shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("EXAMPLEKEY"), "{shown}");
        assert!(!shown.contains("TokenSecret"), "{shown}");
        assert_eq!(
            preview[2].1,
            "AWS4-HMAC-SHA256 Credential=[redacted]/(date)/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token;x-amz-target, \
             Signature=(computed at send time)"
        );
    }
}
