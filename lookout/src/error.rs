//! Why a service builds nothing for an event ([`BuildError`]): the one error every layer
//! that builds (wording, requests, services) shares.

use crate::payload::{Event, PayloadError};

/// Why a service sends nothing for an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Nothing to say about this event (an unknown model, say). Not a failure.
    #[error("{0}")]
    Skip(String),
    /// The payload lacks something this service needs.
    #[error("{0}")]
    Payload(#[from] PayloadError),
    /// What was built is over the platform's size limits and may not be cut (a
    /// forwarded payload): final, never tried again.
    #[error("{0}")]
    TooLarge(String),
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
