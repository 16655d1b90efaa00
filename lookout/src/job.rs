//! What a service works with: the [`Job`] it gets for one delivery. What it builds is in
//! [`crate::request`]; why it builds nothing, in [`crate::error`].

use crate::error::BuildError;
use crate::options::Options;
use crate::payload::Event;
use crate::text::budget::Cut;
use crate::text::template::{Part, Templates};
use crate::text::{Message, Rich};

/// Everything a service gets for one delivery.
pub struct Job<'a> {
    pub event: &'a Event,
    pub options: &'a Options,
    /// Stable across retries of this delivery: use it where the target deduplicates
    /// (Matrix transaction ids, `webhook-id`).
    pub delivery_id: &'a str,
    /// The configured service's templates ([`Templates::default`] for none).
    pub templates: &'a Templates,
    /// How much of the message's texts fit the platform: [`Cut::NONE`] but when the
    /// engine's fitting pass ([`crate::limits::build_within`]) builds again, cut.
    pub cut: Cut,
}

impl Job<'_> {
    /// The message for the event, in the configured service's own words where it has
    /// templates, cut as the platform's limits ask: what every message-formatting
    /// service sends.
    pub fn message(&self) -> Result<Message, BuildError> {
        let message = self
            .templates
            .apply(self.event, Message::from_event(self.event)?)?;
        Ok(message.cut(self.cut))
    }

    /// One part's text from the configured service's template, when it has one: for a
    /// service that writes its own wording rather than a [`Message`].
    pub fn templated(&self, part: Part) -> Option<Result<Rich, BuildError>> {
        self.templates.render(part, self.event)
    }

    /// A URL option, parsed (validation has already checked it). An error names the
    /// option, never its value: URLs often carry keys.
    pub fn url(&self, option: &str) -> Result<url::Url, BuildError> {
        let value = self.options.str(option).unwrap_or_default();
        value
            .parse()
            .map_err(|e| BuildError::Invalid(format!("{option}: {e}")))
    }
}
