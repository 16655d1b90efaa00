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

/// Where a new shaped delivery arrives: its event, the event's product, and when (the
/// event's receipt at the intake; the moment of a replay's `--send`).
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub event_id: &'a str,
    pub product: &'a str,
    pub at: Millis,
}

/// How a new delivery is shaped, as the store needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Coalesce(Coalescing),
    Digest(Gathering),
}

/// A coalesced delivery: a newer one of the same key replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coalescing {
    /// Deliveries with equal keys replace each other (a hash: values may be private).
    pub key: String,
    pub window_ms: Millis,
    pub max_wait_ms: Millis,
}

/// A delivery gathered into its service's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gathering {
    /// The configured service's digests (a hash of its product and name).
    pub key: String,
    pub window_ms: Millis,
    pub max_events: u32,
}

/// The shape of a delivery of `instance` (of `product`) for `event`: none when the
/// service shapes nothing, or coalesces and the event has no value at `by` (sent alone).
pub fn shape(product: &str, instance: &Instance, event: &Event) -> Option<Shape> {
    let shaping = &instance.shaping;
    if let Some(coalesce) = &shaping.coalesce {
        let value = coalesce.key_of(event)?;
        return Some(Shape::Coalesce(Coalescing {
            key: short_hash(&["coalesce", product, &instance.name, &value]),
            window_ms: millis(coalesce.window),
            max_wait_ms: millis(coalesce.max_wait),
        }));
    }
    let digest = shaping.digest.as_ref()?;
    Some(Shape::Digest(Gathering {
        key: short_hash(&["digest", product, &instance.name]),
        window_ms: millis(digest.window),
        max_events: digest.max_events,
    }))
}

impl Coalescing {
    /// When a coalesced delivery of an event received `at` is due, its stream having
    /// started `since` (its own event, or the first of those it replaced).
    pub fn due(&self, at: Millis, since: Millis) -> Millis {
        coalesced_due((self.window_ms, self.max_wait_ms), at, since)
    }
}

/// [`Coalescing::due`] for a `(window, max_wait)` rule: also what `lookout replay`
/// reckons with.
fn coalesced_due((window_ms, max_wait_ms): (Millis, Millis), at: Millis, since: Millis) -> Millis {
    at.saturating_add(window_ms)
        .min(since.saturating_add(max_wait_ms))
        .max(at)
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
        let coalescing = Coalescing {
            key: "k".to_owned(),
            window_ms: 30_000,
            max_wait_ms: 300_000,
        };
        assert_eq!(coalescing.due(1_000, 1_000), 31_000);
        assert_eq!(coalescing.due(290_000, 1_000), 301_000);
        assert_eq!(coalescing.due(400_000, 1_000), 400_000);
    }
}

/// What coalescing or digests make of a run of events: how `lookout replay` shows
/// what a config would have sent ("42 events → 3 digests"). The same rules as the
/// stores', on the events' receipt times.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Shaped {
    /// The configured service.
    pub instance: String,
    /// `coalesce` or `digest`.
    pub shape: &'static str,
    /// The events it gets.
    pub events: usize,
    /// The messages it would send for them (digests, or deliveries left after
    /// coalescing).
    pub messages: usize,
}

impl Shaped {
    /// `board (digest): 42 events → 3 digests`.
    pub fn describe(&self) -> String {
        let messages = match (self.shape, self.messages) {
            ("digest", 1) => "1 digest".to_owned(),
            ("digest", n) => format!("{n} digests"),
            (_, 1) => "1 delivery".to_owned(),
            (_, n) => format!("{n} deliveries"),
        };
        let superseded = match self.shape {
            "coalesce" => format!(" ({} superseded)", self.events - self.messages),
            _ => String::new(),
        };
        format!(
            "{} ({}): {} events → {messages}{superseded}",
            self.instance, self.shape, self.events
        )
    }
}

/// The events one shaped service would get, to be tallied ([`tally`]).
#[derive(Debug, Clone, Default)]
pub struct Arrivals {
    /// `(received at, coalescing key)`, in any order; the key `None`: sent alone.
    pub events: Vec<(Millis, Option<String>)>,
}

impl Arrivals {
    /// `event` of `product`, received `at`, if `instance` shapes and gets it.
    pub fn add(&mut self, product: &str, instance: &Instance, event: &Event, at: Millis) {
        if !instance.shaping.is_set() || !instance.listens_to(event) {
            return;
        }
        let key = match shape(product, instance, event) {
            Some(Shape::Coalesce(coalescing)) => Some(coalescing.key),
            _ => None,
        };
        self.events.push((at, key));
    }
}

/// What `instance`'s shaping makes of `arrivals`; `None` when it shapes nothing.
pub fn tally(instance: &Instance, arrivals: &Arrivals) -> Option<Shaped> {
    let mut events = arrivals.events.clone();
    events.sort_by_key(|(at, _)| *at);
    let shaping = &instance.shaping;
    let (shape, messages) = if let Some(coalesce) = &shaping.coalesce {
        let rule = (millis(coalesce.window), millis(coalesce.max_wait));
        ("coalesce", coalesced(&events, rule))
    } else {
        let digest = shaping.digest.as_ref()?;
        let rule = (millis(digest.window), digest.max_events as usize);
        ("digest", digests(&events, rule))
    };
    Some(Shaped {
        instance: instance.name.clone(),
        shape,
        events: events.len(),
        messages,
    })
}

/// Deliveries left after coalescing `events` (oldest first): per key, an open stream
/// (when its delivery is due, when it began) that a newer event within it replaces.
fn coalesced(events: &[(Millis, Option<String>)], rule: (Millis, Millis)) -> usize {
    let mut open: std::collections::HashMap<&str, (Millis, Millis)> = Default::default();
    let mut sent = 0;
    for (at, key) in events {
        let Some(key) = key else {
            sent += 1;
            continue;
        };
        let since = match open.get(key.as_str()) {
            Some(&(due, since)) if *at < due => since,
            Some(_) => {
                sent += 1; // Its window was over: sent, and this begins anew.
                *at
            }
            None => *at,
        };
        let due = coalesced_due(rule, *at, since);
        open.insert(key, (due, since));
    }
    sent + open.len()
}

/// Digests sent for `events` (oldest first): one is open until its window ends or it
/// holds `max_events`.
fn digests(events: &[(Millis, Option<String>)], (window, max_events): (Millis, usize)) -> usize {
    let mut sent = 0;
    let mut open: Option<(Millis, usize)> = None;
    for (at, _) in events {
        open = match open {
            Some((due, count)) if *at < due && count < max_events => Some((due, count + 1)),
            Some(_) => {
                sent += 1;
                Some((at + window, 1))
            }
            None => Some((at + window, 1)),
        };
        if let Some((_, count)) = open
            && count >= max_events
        {
            sent += 1;
            open = None;
        }
    }
    sent + usize::from(open.is_some())
}

#[cfg(test)]
mod replay_tests {
    use super::*;

    #[test]
    fn coalescing_and_digests_are_tallied_as_the_stores_send() {
        let key = |k: &str| Some(k.to_owned());
        // Six updates of one item a second apart (window 2 s), then one later.
        let mut events: Vec<(Millis, Option<String>)> =
            (0..6).map(|n| (n * 1_000, key("a"))).collect();
        events.push((60_000, key("a")));
        events.push((0, key("b")));
        events.push((0, None));
        assert_eq!(
            coalesced(&events_sorted(events.clone()), (2_000, 60_000)),
            4
        );
        // max_wait 3 s cuts the stream of item a after its fourth update.
        assert_eq!(coalesced(&events_sorted(events), (2_000, 3_000)), 5);
        // 42 events a second apart, digests of 20 s, at most 15: 15, 15 and 12 events.
        let spread: Vec<(Millis, Option<String>)> = (0..42).map(|n| (n * 1_000, None)).collect();
        assert_eq!(digests(&spread, (20_000, 15)), 3);
        assert_eq!(digests(&spread, (60_000, 50)), 1);
    }

    fn events_sorted(mut events: Vec<(Millis, Option<String>)>) -> Vec<(Millis, Option<String>)> {
        events.sort_by_key(|(at, _)| *at);
        events
    }
}
