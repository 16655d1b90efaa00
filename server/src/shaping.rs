//! Messages shaped for people (docs/SHAPING.md): what a new delivery of a configured
//! service with `coalesce` or `digest` carries into the store, where the shaping itself
//! happens in the intake's transaction (so that a crash at any moment leaves each event
//! either sent, alone, in its replacement or in its digest, or still to be sent).
//!
//! - **Coalescing.** A delivery waits `window` after its event. A newer event of the same
//!   key (same model, same value at `by`) stored meanwhile *supersedes* every queued,
//!   never-attempted, not-yet-due delivery of that key: they end `superseded`, linked to
//!   the new one, which is due `window` after its own event, but no later than
//!   `max_wait` after the first event of the stream it replaced.
//! - **Digests.** A new event's delivery joins the open digest of its service (a
//!   delivery of its own, not yet due, never attempted, with room): it ends `digested`,
//!   linked to the digest. With no open digest, a new one is opened, due `window` later;
//!   the one that reaches `max_events` is due at once.

use lookout::config::Instance;
use lookout::payload::{Event, PayloadError};

use crate::clock::{Millis, millis};
use crate::lanes::short_hash;

/// How a new delivery is shaped, as the store needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Coalesce {
        /// Deliveries with equal keys replace each other (a hash: values may be private).
        key: String,
        window_ms: Millis,
        max_wait_ms: Millis,
    },
    Digest {
        /// The configured service's digests (a hash of its product and name).
        key: String,
        window_ms: Millis,
        max_events: u32,
    },
}

/// The shape of a delivery of `instance` (of `product`) for `event`: none when the
/// service shapes nothing, or coalesces and the event has no value at `by` (sent alone).
pub fn shape(product: &str, instance: &Instance, event: &Event) -> Option<Shape> {
    let shaping = &instance.shaping;
    if let Some(coalesce) = &shaping.coalesce {
        let value = coalesce.key_of(event)?;
        return Some(Shape::Coalesce {
            key: short_hash(&["coalesce", product, &instance.name, &value]),
            window_ms: millis(coalesce.window),
            max_wait_ms: millis(coalesce.max_wait),
        });
    }
    let digest = shaping.digest.as_ref()?;
    Some(Shape::Digest {
        key: short_hash(&["digest", product, &instance.name]),
        window_ms: millis(digest.window),
        max_events: digest.max_events,
    })
}

impl Shape {
    /// When a coalesced delivery of an event received `at` is due, its stream having
    /// started `since` (its own event, or the first of those it replaced).
    pub fn coalesced_due(
        window_ms: Millis,
        max_wait_ms: Millis,
        at: Millis,
        since: Millis,
    ) -> Millis {
        at.saturating_add(window_ms)
            .min(since.saturating_add(max_wait_ms))
            .max(at)
    }
}

/// The event a claimed delivery sends: its own, or for a digest the digest of its
/// events (payloads that no longer parse are left out: each was checked when stored).
pub fn event_of(claimed: &crate::store::Claimed) -> Result<Event, PayloadError> {
    let first = Event::parse(&claimed.payload)?;
    let Some(payloads) = &claimed.digest else {
        return Ok(first);
    };
    let events: Vec<Event> = payloads
        .iter()
        .filter_map(|p| Event::parse(p).ok())
        .collect();
    Ok(Event::digest_of(events).unwrap_or(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_held_no_longer_than_max_wait() {
        assert_eq!(Shape::coalesced_due(30_000, 300_000, 1_000, 1_000), 31_000);
        assert_eq!(
            Shape::coalesced_due(30_000, 300_000, 290_000, 1_000),
            301_000
        );
        assert_eq!(
            Shape::coalesced_due(30_000, 300_000, 400_000, 1_000),
            400_000
        );
    }
}
