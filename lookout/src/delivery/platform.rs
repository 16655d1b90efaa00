//! What the transport asks of the platform it sends to: its pace and how to read its
//! answers. Services declare these (`rate_limit` in `service!`, `Service::verdict`,
//! `Service::wait_asked`); the registry hands them over through this trait, so the way
//! out does not depend on the registry.

use std::time::Duration;

use super::ratelimit::RateLimit;

/// A platform as the transport sees it.
pub trait Platform: Send + Sync {
    /// How fast one target may be sent to (`None`: full speed).
    fn rate_limit(&self) -> Option<RateLimit>;

    /// A wait the platform asked for in the body of a refusal.
    fn wait_asked(&self, answer_body: &[u8]) -> Option<Duration>;

    /// What an answer means beyond its status.
    fn verdict(&self, status: u16, answer_body: &[u8]) -> Verdict;
}

/// What a platform's answer means when its status alone does not say it. Several
/// platforms answer `200` with an error code in the body, and several say "this hook is
/// gone" with a status that means something else elsewhere (Slack: `404 no_service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The status decides, as for any HTTP target (see docs/DELIVERY.md).
    ByStatus,
    /// The target is gone for good (a deleted webhook, a revoked token): disable it, with
    /// this plain reason, and never send there again until an operator re-enables it.
    Gone(String),
    /// The platform refused the message (even with a `2xx`), for this reason; `retry`
    /// says whether another try could do better.
    Refused { reason: String, retry: bool },
}
