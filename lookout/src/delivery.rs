//! Sending requests: the one shared HTTP client and what a delivery attempt reports.

use std::error::Error as _;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use crate::redact::Redactor;
use crate::request::{HttpRequest, Signing};
use crate::service::{BuildError, Job, Outgoing};
use crate::settings::Settings;
use crate::signing;

/// How one request (or one skipped service) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// The target answered 2xx.
    Delivered { status: u16 },
    /// Nothing was sent, on purpose (event not listened to, no message for the model).
    Skipped { reason: String },
    /// Sending failed; `reason` is redacted.
    Failed {
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
    },
    /// The target answered 410 Gone: it asks never to be sent to again.
    Disabled { reason: String, status: u16 },
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed { .. } | Outcome::Disabled { .. })
    }
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Failed { .. } => "failed",
            Outcome::Disabled { .. } => "disabled",
        }
    }
}

/// The result of one request a service made (or of a service that made none).
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// Where it went, redacted (`https://hooks.slack.com/[redacted]`); none when nothing
    /// was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub attempts: u32,
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Delivery {
    pub fn skipped(reason: impl Into<String>) -> Self {
        Delivery {
            target: None,
            outcome: Outcome::Skipped {
                reason: reason.into(),
            },
            attempts: 0,
            duration: Duration::ZERO,
        }
    }

    pub fn failed(target: Option<String>, reason: impl Into<String>) -> Self {
        Delivery {
            target,
            outcome: Outcome::Failed {
                reason: reason.into(),
                status: None,
            },
            attempts: 0,
            duration: Duration::ZERO,
        }
    }

    /// What a service that could not build its requests reports.
    pub fn not_sent(err: BuildError, redactor: &Redactor) -> Self {
        match err {
            BuildError::Skip(reason) => Delivery::skipped(redactor.redact(&reason)),
            other => Delivery::failed(None, redactor.redact(&other.to_string())),
        }
    }
}

/// The engine's way out: one pooled HTTP client and the delivery policy.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    settings: Settings,
}

/// `Lookout/<version> (<os>; <arch>)`, as Zulip asks integrations to identify themselves.
pub fn user_agent() -> String {
    format!(
        "Lookout/{} ({}; {})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

impl Transport {
    pub fn new(settings: Settings) -> Result<Transport, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(user_agent())
            // A redirect could lead anywhere, including inside the network: never follow.
            .redirect(reqwest::redirect::Policy::none())
            // Proxies come from explicit configuration only, never from the environment.
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Transport { client, settings })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Sends every request of one service, concurrently; one result each.
    pub async fn deliver_all(&self, outgoing: Vec<Outgoing>, job: &Job<'_>) -> Vec<Delivery> {
        join_all(outgoing.iter().map(|o| match o {
            Outgoing::Http(request) => self.deliver(request, job),
        }))
        .await
    }

    /// Sends one request.
    pub async fn deliver(&self, request: &HttpRequest, job: &Job<'_>) -> Delivery {
        let redactor = job.options.redactor();
        let target = Some(redactor.redact(request.url.as_str()));
        let started = Instant::now();
        let outcome =
            match tokio::time::timeout(self.settings.request_timeout, self.attempt(request, job))
                .await
            {
                Ok(Ok(answer)) => answer.outcome(redactor),
                Ok(Err(err)) => Outcome::Failed {
                    reason: redactor.redact(&describe_error(&err)),
                    status: None,
                },
                Err(_) => Outcome::Failed {
                    reason: format!(
                        "timed out after {}",
                        humantime::format_duration(self.settings.request_timeout)
                    ),
                    status: None,
                },
            };
        Delivery {
            target,
            outcome,
            attempts: 1,
            duration: started.elapsed(),
        }
    }

    async fn attempt(
        &self,
        request: &HttpRequest,
        job: &Job<'_>,
    ) -> Result<Answer, reqwest::Error> {
        let body = request.body.to_wire();
        let method =
            reqwest::Method::from_bytes(request.method.as_str().as_bytes()).expect("known method");
        let mut builder = self.client.request(method, request.url.clone());
        if let Some(content_type) = request.body.content_type() {
            builder = builder.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        for header in &request.headers {
            let Ok(mut value) = reqwest::header::HeaderValue::from_str(&header.value) else {
                continue;
            };
            value.set_sensitive(header.sensitive);
            builder = builder.header(header.name.as_str(), value);
        }
        if let Some(Signing::StandardWebhooks { key }) = &request.signing {
            for (name, value) in signing::standard_webhooks(key, job.delivery_id, unix_now(), &body)
            {
                builder = builder.header(name, value);
            }
        }
        let mut response = builder.body(body).send().await?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut snippet = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = self
                .settings
                .max_response_bytes
                .saturating_sub(snippet.len());
            snippet.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break; // The cap is reached: stop reading, drop the connection.
            }
        }
        Ok(Answer {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or(""),
            location,
            body: String::from_utf8_lossy(&snippet).into_owned(),
        })
    }
}

/// What the target answered.
struct Answer {
    status: u16,
    reason: &'static str,
    location: Option<String>,
    body: String,
}

impl Answer {
    fn outcome(&self, redactor: &Redactor) -> Outcome {
        let status = self.status;
        if (200..300).contains(&status) {
            return Outcome::Delivered { status };
        }
        let mut reason = format!("HTTP {status} {}", self.reason)
            .trim_end()
            .to_owned();
        if let Some(location) = &self.location {
            reason.push_str(&format!(" (redirect to {location} not followed)"));
        }
        let excerpt: String = self.body.trim().chars().take(200).collect();
        if !excerpt.is_empty() {
            reason.push_str(": ");
            reason.push_str(&excerpt);
        }
        let reason = redactor.redact(&reason);
        if status == 410 {
            Outcome::Disabled { reason, status }
        } else {
            Outcome::Failed {
                reason,
                status: Some(status),
            }
        }
    }
}

/// A reqwest error as one line, without the URL (it may hold a key) and with the root
/// cause that says what actually went wrong.
fn describe_error(err: &reqwest::Error) -> String {
    let what = if err.is_connect() {
        "connection failed"
    } else if err.is_timeout() {
        "timed out"
    } else if err.is_body() || err.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    // The error's own text names the URL, which may hold a key: use its causes only.
    let mut cause = err.source();
    let mut last = None;
    while let Some(source) = cause {
        last = Some(source.to_string());
        cause = source.source();
    }
    match last {
        Some(root) if !root.is_empty() => format!("{what}: {root}"),
        _ => what.to_owned(),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
