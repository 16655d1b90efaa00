//! What a delivery reports: how each request (or a service that sent none) ended.

use std::time::Duration;

use serde::Serialize;

use super::retry::Retry;
use crate::error::BuildError;
use crate::redact::Redactor;

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
    /// The target's HTTP status, if one answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Delivered { status } | Outcome::Disabled { status, .. } => Some(*status),
            Outcome::Failed { status, .. } => *status,
            Outcome::Skipped { .. } => None,
        }
    }

    /// Why it was skipped, failed or disabled (redacted); `None` when delivered.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Failed { reason, .. }
            | Outcome::Disabled { reason, .. }
            | Outcome::Skipped { reason } => Some(reason),
            Outcome::Delivered { .. } => None,
        }
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
    /// Whether a later try could do better, and when the target asked for it: what a
    /// caller that schedules its own retries (the durable worker) goes by.
    #[serde(skip)]
    pub retry: Retry,
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
            retry: Retry::No,
        }
    }

    /// A failure that another try, later, may not repeat.
    pub fn failed(target: Option<String>, reason: impl Into<String>) -> Self {
        Delivery {
            target,
            outcome: Outcome::Failed {
                reason: reason.into(),
                status: None,
            },
            attempts: 0,
            duration: Duration::ZERO,
            retry: Retry::Yes { after: None },
        }
    }

    /// What a service that could not build its requests reports. A payload that lacks
    /// something will lack it on every try; options can be fixed in the meantime.
    pub fn not_sent(err: BuildError, redactor: &Redactor) -> Self {
        match err {
            BuildError::Skip(reason) => Delivery::skipped(redactor.redact(&reason)),
            err @ (BuildError::Payload(_) | BuildError::TooLarge(_)) => Delivery {
                retry: Retry::No,
                ..Delivery::failed(None, redactor.redact(&err.to_string()))
            },
            err @ BuildError::Invalid(_) => {
                Delivery::failed(None, redactor.redact(&err.to_string()))
            }
        }
    }
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

/// A duration as people read it in a report: `381ms`, `1m 30s` (rounded to the
/// millisecond).
pub fn human_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}
