//! What both stores keep of fallback routes (docs/SHAPING.md, "Fallback routes"): the
//! link between a delivery that went dead (or whose target was disabled) and the one
//! made for its service's fallback, written in the transaction that records the dead
//! letter ([`Finish::fallback`](super::Finish::fallback)), so that a crash between the
//! two cannot lose or double it. The SQL is in `sqlite_fallback.rs` and
//! `postgres_fallback.rs`; the routing decision in [`crate::shaping::fallback`].

use serde::Serialize;
use utoipa::ToSchema;

use super::Status;

/// The other end of a fallback: a delivery and the configured service it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FallbackLink {
    /// The delivery's id.
    pub delivery: String,
    /// Its configured service.
    pub instance: String,
}

/// A link as the stores read it: the linked delivery's id and its service, the last
/// columns of a [`DeliveryRow`](super::DeliveryRow)'s (`fell_back_to` and a subquery of
/// its `instance`; then the same of `fallback_for`).
pub(super) fn link(delivery: Option<String>, instance: Option<String>) -> Option<FallbackLink> {
    Some(FallbackLink {
        delivery: delivery?,
        instance: instance.unwrap_or_default(),
    })
}

/// Whether a delivery ending in `status` falls back: it went dead, or its targets are
/// disabled.
pub fn falls_back(status: Status) -> bool {
    matches!(status, Status::Dead | Status::Disabled)
}

impl super::DeliveryRow {
    /// Its fallback link as people read it: "fell back to mail (msg_…)" on the delivery
    /// that went dead, "fallback for chat (msg_…)" on its fallback.
    pub fn fallback_note(&self) -> Option<String> {
        let shown = |words: &str, link: &FallbackLink| {
            format!("{words} {} ({})", link.instance, link.delivery)
        };
        match (&self.fell_back_to, &self.fallback_for) {
            (Some(to), _) => Some(shown("fell back to", to)),
            (None, Some(from)) => Some(shown("fallback for", from)),
            (None, None) => None,
        }
    }
}
