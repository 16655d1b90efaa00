//! What a service asks the engine to send ([`Outgoing`]): a plain description of an HTTP
//! request (here), an email ([`email`]) or a broker message ([`publish`]), and how a
//! request is signed ([`signing`]).
//!
//! Services build these without doing any I/O; the engine sends them (with its timeouts,
//! retries, signing and guards), `--dry-run` prints them, and the snapshot tests record
//! them. One path for all three keeps the snapshots honest.

pub mod email;
pub mod publish;
pub mod signing;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use crate::redact::{REDACTED, Redactor};
use email::Email;
use publish::Publish;
use signing::{AT_SEND_TIME, AwsSigner};

/// An HTTP method (the ones outside services use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Method {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
    /// Credentials: never printed, and marked sensitive on the wire.
    pub sensitive: bool,
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    /// A JSON document built by the service.
    Json(Value),
    /// JSON text sent byte for byte as it is (the webhook forwards the payload unchanged).
    RawJson(Arc<str>),
    /// `application/x-www-form-urlencoded` fields, in order.
    Form(Vec<(String, String)>),
    /// Any other text.
    Text {
        content_type: String,
        text: String,
    },
}

impl Body {
    pub fn content_type(&self) -> Option<&str> {
        match self {
            Body::Empty => None,
            Body::Json(_) | Body::RawJson(_) => Some("application/json"),
            Body::Form(_) => Some("application/x-www-form-urlencoded"),
            Body::Text { content_type, .. } => Some(content_type),
        }
    }

    /// The exact bytes that go on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Body::Empty => Vec::new(),
            Body::Json(value) => serde_json::to_vec(value).unwrap_or_default(),
            Body::RawJson(text) => text.as_bytes().to_vec(),
            Body::Form(fields) => form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish()
                .into_bytes(),
            Body::Text { text, .. } => text.as_bytes().to_vec(),
        }
    }

    /// The same bytes as [`Body::to_bytes`], ready to send: a forwarded payload is shared
    /// rather than copied, as every request of every event would otherwise copy it.
    pub fn to_wire(&self) -> bytes::Bytes {
        match self {
            Body::RawJson(text) => bytes::Bytes::from_owner(SharedText(text.clone())),
            other => bytes::Bytes::from(other.to_bytes()),
        }
    }
}

impl Body {
    /// The body as previews show it, secrets redacted: JSON decoded, form fields as a
    /// list of `{name: value}`, text as a string.
    pub fn preview(&self, redactor: &Redactor) -> Value {
        match self {
            Body::Empty => Value::Null,
            Body::Json(value) => redactor.redact_json(value),
            Body::RawJson(text) => json_text_preview(text, redactor),
            // JSON under a protocol's own type (`application/x-amz-json-1.0`) reads as JSON.
            Body::Text { content_type, text } if content_type.contains("json") => {
                json_text_preview(text, redactor)
            }
            Body::Form(fields) => Value::Array(
                fields
                    .iter()
                    .map(|(k, v)| {
                        let mut field = serde_json::Map::new();
                        field.insert(redactor.redact(k), Value::from(redactor.redact(v)));
                        Value::Object(field)
                    })
                    .collect(),
            ),
            Body::Text { text, .. } => Value::String(redactor.redact(text)),
        }
    }
}

/// Shared text seen as bytes, so that [`bytes::Bytes`] can own it without a copy.
struct SharedText(Arc<str>);

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// How the engine signs a request at send time (the signature covers the timestamp of
/// each attempt, so it cannot be computed in advance).
#[derive(Clone)]
pub enum Signing {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`, with
    /// one signature per key (several while a secret is rotated).
    StandardWebhooks { keys: Vec<Vec<u8>> },
    /// AWS Signature Version 4: `x-amz-date`, `authorization` (and
    /// `x-amz-security-token` with temporary credentials), over the method, URL, the
    /// request's headers and its body.
    AwsSigV4(AwsSigner),
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signing::StandardWebhooks { .. } => f.write_str("StandardWebhooks([redacted])"),
            Signing::AwsSigV4(signer) => write!(f, "AwsSigV4({signer:?})"),
        }
    }
}

/// One HTTP request a service wants sent.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<Header>,
    pub body: Body,
    /// Boxed: an AWS signer is five strings, and every request of a delivery in flight
    /// is held until it ends, signed or not.
    pub signing: Option<Box<Signing>>,
}

impl HttpRequest {
    pub fn new(method: Method, url: Url) -> Self {
        HttpRequest {
            method,
            url,
            headers: Vec::new(),
            body: Body::Empty,
            signing: None,
        }
    }
    pub fn post(url: Url) -> Self {
        Self::new(Method::Post, url)
    }
    pub fn put(url: Url) -> Self {
        Self::new(Method::Put, url)
    }
    pub fn json(mut self, value: Value) -> Self {
        self.body = Body::Json(value);
        self
    }
    pub fn raw_json(mut self, text: Arc<str>) -> Self {
        self.body = Body::RawJson(text);
        self
    }
    pub fn form<K: Into<String>, V: Into<String>>(
        mut self,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.body = Body::Form(
            fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }
    pub fn text(mut self, content_type: &str, text: impl Into<String>) -> Self {
        self.body = Body::Text {
            content_type: content_type.to_owned(),
            text: text.into(),
        };
        self
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push(Header {
            name: name.to_owned(),
            value: value.into(),
            sensitive: false,
        });
        self
    }
    /// A header carrying a credential: sent, never shown.
    pub fn secret_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push(Header {
            name: name.to_owned(),
            value: value.into(),
            sensitive: true,
        });
        self
    }
    pub fn bearer(self, token: &str) -> Self {
        self.secret_header("Authorization", format!("Bearer {token}"))
    }
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.secret_header("Authorization", format!("Basic {pair}"))
    }
    pub fn signed(mut self, signing: Signing) -> Self {
        self.signing = Some(Box::new(signing));
        self
    }

    /// The headers that sign this try, computed now over the request as it is sent
    /// (`body`: its bytes on the wire); none for a request that is not signed.
    pub fn signature(&self, delivery_id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        let now = std::time::SystemTime::now();
        match self.signing.as_deref() {
            Some(Signing::StandardWebhooks { keys }) => {
                let unix = now
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                signing::standard_webhooks(keys, delivery_id, unix, body).into()
            }
            Some(Signing::AwsSigV4(signer)) => {
                let method = self.method.as_str();
                signer.sign(method, &self.url, &self.headers_to_sign(), body, now)
            }
            None => Vec::new(),
        }
    }

    /// The headers a signature covers besides `host`: the content type and the
    /// service's own headers.
    fn headers_to_sign(&self) -> Vec<(&str, &str)> {
        let content_type = self.body.content_type().map(|t| ("content-type", t));
        content_type
            .into_iter()
            .chain(
                self.headers
                    .iter()
                    .map(|h| (h.name.as_str(), h.value.as_str())),
            )
            .collect()
    }

    /// The request as it may be shown: secrets redacted, JSON bodies decoded.
    pub fn preview(&self, redactor: &Redactor) -> RequestPreview {
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(content_type) = self.body.content_type() {
            headers.push(("content-type".into(), content_type.into()));
        }
        for h in &self.headers {
            let value = if h.sensitive {
                REDACTED.to_owned()
            } else {
                redactor.redact(&h.value)
            };
            headers.push((h.name.to_ascii_lowercase(), value));
        }
        match self.signing.as_deref() {
            Some(Signing::StandardWebhooks { .. }) => {
                for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                    headers.push((name.into(), AT_SEND_TIME.into()));
                }
            }
            Some(Signing::AwsSigV4(signer)) => {
                let added = signer.preview(&self.headers_to_sign());
                headers.extend(added.into_iter().map(|(name, value)| (name.into(), value)));
            }
            None => {}
        }
        RequestPreview {
            method: self.method.as_str(),
            url: redactor.redact(self.url.as_str()),
            headers,
            body: self.body.preview(redactor),
        }
    }
}

/// JSON text as a preview shows it: decoded and redacted (as text if it does not parse).
fn json_text_preview(text: &str, redactor: &Redactor) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => redactor.redact_json(&value),
        Err(_) => Value::String(redactor.redact(text)),
    }
}

/// `base` (a URL option such as `base_url`, with or without a trailing slash or a path of
/// its own) with `segments` appended, each percent-encoded as exactly one path segment:
/// a token with `/`, `?` or `#` in it stays inside its segment.
pub fn endpoint(base: &str, segments: &[&str]) -> Result<Url, url::ParseError> {
    let mut url = Url::parse(base)?;
    url.path_segments_mut()
        .map_err(|()| url::ParseError::RelativeUrlWithCannotBeABaseBase)?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// The payload exactly as the product sent it, POSTed as JSON to each of `urls`, and
/// signed (Standard Webhooks) with every one of `signing_secrets` (none: unsigned): what
/// webhook-style services send.
pub fn forward_payload(
    job: &crate::job::Job<'_>,
    urls: &[&str],
    signing_secrets: &[&str],
) -> Result<Vec<Outgoing>, crate::error::BuildError> {
    use crate::BuildError;
    let keys = signing_secrets
        .iter()
        .map(|secret| signing::decode_secret(secret))
        .collect::<Result<Vec<_>, _>>()
        .map_err(BuildError::Invalid)?;
    let signing = (!keys.is_empty()).then_some(Signing::StandardWebhooks { keys });
    // One request per URL, in a list of that size: it is held while they are in flight.
    let mut requests = Vec::with_capacity(urls.len());
    for url in urls {
        let url = url
            .parse()
            .map_err(|e| BuildError::Invalid(format!("urls: {e}")))?;
        let mut request = HttpRequest::post(url).raw_json(job.event.forwarded());
        if let Some(signing) = &signing {
            request = request.signed(signing.clone());
        }
        requests.push(request.into());
    }
    Ok(requests)
}

/// A printable, redacted view of an [`HttpRequest`]: what `--dry-run` prints and what the
/// snapshot tests record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RequestPreview {
    pub method: &'static str,
    pub url: String,
    #[serde(serialize_with = "headers_as_map")]
    pub headers: Vec<(String, String)>,
    /// JSON bodies as JSON; form bodies as a list of `{name: value}`; text as a string.
    pub body: Value,
}

/// Headers read best as a map; the order they are sent in is kept.
fn headers_as_map<S: serde::Serializer>(
    headers: &[(String, String)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(headers.len()))?;
    for (name, value) in headers {
        map.serialize_entry(name, value)?;
    }
    map.end()
}

impl std::fmt::Display for RequestPreview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} {}", self.method, self.url)?;
        for (name, value) in &self.headers {
            writeln!(f, "{name}: {value}")?;
        }
        match &self.body {
            Value::Null => Ok(()),
            Value::String(text) => writeln!(f, "\n{text}"),
            body => writeln!(
                f,
                "\n{}",
                serde_json::to_string_pretty(body).unwrap_or_default()
            ),
        }
    }
}

/// Something a service wants sent.
///
/// Every request of a delivery is held until it is answered, so the rarer kinds, which
/// are larger than an HTTP request, are boxed: they do not make each HTTP request in
/// flight as large as they are.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outgoing {
    Http(HttpRequest),
    /// A message sent over SMTP (see [`crate::delivery::smtp`]).
    Email(Box<Email>),
    /// A message published to a broker (see [`crate::delivery::publish`]).
    Publish(Box<Publish>),
}

impl Outgoing {
    /// What `--dry-run` and the snapshots show for it, secrets redacted.
    pub fn preview(&self, redactor: &Redactor) -> RequestPreview {
        match self {
            Outgoing::Http(request) => request.preview(redactor),
            Outgoing::Email(email) => email.preview(redactor),
            Outgoing::Publish(publish) => publish.preview(redactor),
        }
    }

    /// Where it goes, as reports show it (secrets redacted).
    pub fn shown_target(&self, redactor: &Redactor) -> String {
        match self {
            Outgoing::Http(request) => redactor.redact(request.url.as_str()),
            Outgoing::Email(email) => redactor.redact(&email.server.url()),
            Outgoing::Publish(publish) => publish.redactor(redactor).redact(&publish.shown),
        }
    }

    /// The URL its target's pace is counted by (see
    /// [`ratelimit`](crate::delivery::ratelimit)): the request's URL, the SMTP server's,
    /// the broker's.
    pub fn pace_url(&self) -> Result<url::Url, String> {
        match self {
            Outgoing::Http(request) => Ok(request.url.clone()),
            Outgoing::Email(email) => email
                .server
                .url()
                .parse()
                .map_err(|e| format!("not an SMTP server address: {e}")),
            Outgoing::Publish(publish) => publish.broker_url(),
        }
    }

    /// Identifies the target across tries of one delivery: the durable worker records
    /// which targets already got it under this key. A hash of the method (or `SMTP`, the
    /// server and the recipients; or the protocol, the broker and the place in it) and
    /// the full URL: the URL may hold a key, the hash does not show it.
    pub fn target_key(&self) -> String {
        let destination = match self {
            Outgoing::Http(request) => format!("{} {}", request.method.as_str(), request.url),
            Outgoing::Email(email) => {
                let to: Vec<String> = email.to.iter().map(ToString::to_string).collect();
                format!("SMTP {} {}", email.server.url(), to.join(","))
            }
            Outgoing::Publish(publish) => format!(
                "{} {}:{} {}",
                publish.protocol, publish.host, publish.port, publish.shown
            ),
        };
        let digest = Sha256::digest(destination);
        digest[..12].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl From<HttpRequest> for Outgoing {
    fn from(request: HttpRequest) -> Self {
        Outgoing::Http(request)
    }
}

impl From<Publish> for Outgoing {
    fn from(publish: Publish) -> Self {
        Outgoing::Publish(Box::new(publish))
    }
}

impl From<Email> for Outgoing {
    fn from(email: Email) -> Self {
        Outgoing::Email(Box::new(email))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_append_whole_segments() {
        let url = endpoint("https://api.example.com", &["v1", "inbox", "a/b?c#d e"]).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.example.com/v1/inbox/a%2Fb%3Fc%23d%20e"
        );
        let url = endpoint("http://127.0.0.1:9/prefix/", &["v1"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/prefix/v1");
        assert!(endpoint("not a url", &["v1"]).is_err());
    }

    #[test]
    fn wire_bytes_are_the_body_bytes() {
        let bodies = [
            Body::Empty,
            Body::Json(serde_json::json!({"a": [1, "é"]})),
            Body::RawJson(Arc::from("{\"b\": \"x\"}")),
            Body::Form(vec![("k".into(), "v w".into())]),
            Body::Text {
                content_type: "text/plain".into(),
                text: "hello".into(),
            },
        ];
        for body in bodies {
            assert_eq!(
                body.to_wire().as_ref(),
                body.to_bytes().as_slice(),
                "{body:?}"
            );
        }
    }
}
