//! What a service works with: the [`Job`] it gets for one delivery. What it builds is in
//! [`crate::request`]; why it builds nothing, in [`crate::error`].

use std::time::SystemTime;

use crate::error::BuildError;
use crate::options::Options;
use crate::payload::Event;
use crate::text::budget::Cut;
use crate::text::template::{Part, Templates};
use crate::text::{Message, Rich};

/// What previews (dry runs, snapshots) show in place of a signature made with the time
/// of sending ([`Job::signed_when_sent`]).
pub const SIGNED_WHEN_SENT: &str = "(signed when sent)";

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
    /// When the engine sends it, for platforms that sign with the time of sending (see
    /// [`Job::signed_when_sent`]); `None` for previews (dry runs, snapshots).
    pub sent_at: Option<SystemTime>,
}

impl Job<'_> {
    /// The message for the event, in the configured service's own words where it has
    /// templates, cut as the platform's limits ask: what every message-formatting
    /// service sends. For a digest, the digest's message ([`Message::digest`]).
    pub fn message(&self) -> Result<Message, BuildError> {
        if let Some(events) = self.event.digest() {
            // A digest's parts are not one event's: only `template.digest` applies.
            let message = self
                .templates
                .apply_digest(events, Message::digest(events)?)?;
            return Ok(message.cut(self.cut));
        }
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

    /// A timestamp and a signature made with the time of sending, for platforms that
    /// refuse old ones (DingTalk, Feishu): `sign(now)` gives both when the engine sends;
    /// previews show where they go ([`SIGNED_WHEN_SENT`]) as nothing is signed then. Each
    /// delivery is signed when it is sent, so the durable worker's later attempts carry
    /// a fresh time.
    pub fn signed_when_sent(
        &self,
        sign: impl FnOnce(SystemTime) -> (String, String),
    ) -> (String, String) {
        match self.sent_at {
            Some(now) => sign(now),
            None => (SIGNED_WHEN_SENT.to_owned(), SIGNED_WHEN_SENT.to_owned()),
        }
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
