//! What a service works with: the [`Job`] it gets for one delivery, and why it builds
//! nothing ([`BuildError`]). What it builds is in [`crate::request`].

use crate::options::Options;
use crate::payload::{Event, PayloadError};

/// Everything a service gets for one delivery.
pub struct Job<'a> {
    pub event: &'a Event,
    pub options: &'a Options,
    /// Stable across retries of this delivery: use it where the target deduplicates
    /// (Matrix transaction ids, `webhook-id`).
    pub delivery_id: &'a str,
}

impl Job<'_> {
    /// A URL option, parsed (validation has already checked it). An error names the
    /// option, never its value: URLs often carry keys.
    pub fn url(&self, option: &str) -> Result<url::Url, BuildError> {
        let value = self.options.str(option).unwrap_or_default();
        value
            .parse()
            .map_err(|e| BuildError::Invalid(format!("{option}: {e}")))
    }
}

/// Why a service sends nothing for an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Nothing to say about this event (an unknown model, say). Not a failure.
    #[error("{0}")]
    Skip(String),
    /// The payload lacks something this service needs.
    #[error("{0}")]
    Payload(#[from] PayloadError),
    /// Anything else (an option that cannot be turned into a URL, …).
    #[error("{0}")]
    Invalid(String),
}

impl BuildError {
    /// The skip every message-formatting service gives for a model it has no message for.
    pub fn no_message_for(event: &Event) -> Self {
        BuildError::Skip(format!("no message for model {}", event.model))
    }
}
