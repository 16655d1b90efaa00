//! What the outbox holds of events, deliveries and attempts: an event to accept and its
//! admission, a delivery claimed and how it finished, the rows and counts read back.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::lanes::{DueLane, Heard, Lane, Queued, Waiting};

use super::products::{DisabledTarget, Generation};
use super::upkeep;
use crate::clock::Millis;

/// Where a delivery is in its life (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted, never attempted (or handed back by `redeliver`).
    Pending,
    /// Attempted and failed; due again at `next_at`.
    Failed,
    Delivered,
    /// The service had nothing to send for this event.
    Skipped,
    /// Every target that was left answered 410 Gone.
    Disabled,
    /// Given up: the retry schedule is used up, or the delivery can never work.
    Dead,
    /// Never sent: a newer event of the same item replaced it within its coalescing
    /// window ([`DeliveryRow::replaced_by`] names the delivery that did).
    Superseded,
    /// Never sent alone: its event went into a digest ([`DeliveryRow::replaced_by`]
    /// names the digest's delivery).
    Digested,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::Failed,
        Status::Delivered,
        Status::Skipped,
        Status::Disabled,
        Status::Dead,
        Status::Superseded,
        Status::Digested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Failed => "failed",
            Status::Delivered => "delivered",
            Status::Skipped => "skipped",
            Status::Disabled => "disabled",
            Status::Dead => "dead",
            Status::Superseded => "superseded",
            Status::Digested => "digested",
        }
    }

    /// Whether a worker will still pick it up.
    pub fn is_queued(self) -> bool {
        matches!(self, Status::Pending | Status::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status `{s}` (known: {})", known.join(", "))
            })
    }
}

/// An event to accept, with one delivery per configured service that listens to it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub product: String,
    /// The payload exactly as received.
    pub payload: String,
    pub received_at: Millis,
    pub deliveries: Vec<NewDelivery>,
    /// The key it was posted with (`Idempotency-Key`), if any.
    pub idempotency: Option<IdempotencyKey>,
    /// The [`Product::generation`] its deliveries were chosen with: stored only if the
    /// services have not changed since ([`Admission::Rerouted`] otherwise). `None` for
    /// events whose deliveries are fixed by their caller.
    pub routed_with: Option<Generation>,
    /// The intake's trace context (a W3C `traceparent`), when traces are exported: the
    /// attempts continue that trace.
    pub trace_context: Option<String>,
}

impl NewEvent {
    /// The body of the 202: the event's id and its deliveries. Kept with an idempotency
    /// key, so that a repeated POST gets the very same answer.
    pub fn answer(&self) -> String {
        serde_json::json!({ "id": self.id, "deliveries": self.deliveries }).to_string()
    }
}

/// An idempotency key an event came with: a second event of the same product with the
/// same key is not stored again while the first one's key lives.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    /// Of the product and payload: the same key with another body is a conflict.
    pub digest: String,
    /// Keys recorded before this time have expired: the key may be used afresh.
    pub since: Millis,
}

/// What [`Store::accept_batch`] did with one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Stored with its deliveries.
    Stored,
    /// Its key was seen with the same body: nothing stored; this was the first answer.
    Repeated { answer: String },
    /// Its key was seen with another body: nothing stored.
    Conflict,
    /// Its deliveries were chosen with services that have changed since: nothing
    /// stored; choose again with the product as it is now.
    Rerouted,
}

impl Admission {
    /// For an event whose key is already recorded with `digest` and `answer`.
    pub(super) fn of_earlier(key: &IdempotencyKey, digest: &str, answer: String) -> Admission {
        if key.digest == digest {
            Admission::Repeated { answer }
        } else {
            Admission::Conflict
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NewDelivery {
    /// Also the `webhook-id` on every attempt.
    pub id: String,
    pub instance: String,
    pub service: String,
    /// The lane it waits in (not part of the intake's answer).
    #[serde(skip)]
    #[schema(ignore)]
    pub lane: Lane,
    /// Set when its service orders deliveries by a payload value: deliveries with equal
    /// keys are attempted one at a time, in the order they were stored.
    #[serde(skip)]
    #[schema(ignore)]
    pub order_key: Option<String>,
    /// Set when its service coalesces or gathers digests (`coalesce`, `digest`).
    #[serde(skip)]
    #[schema(ignore)]
    pub shape: Option<crate::shaping::Shape>,
}

impl NewDelivery {
    /// A delivery of `product`'s configured service `instance`, in a lane of its own and
    /// in no order: for a service whose destination is not known, and for tests.
    pub fn in_own_lane(product: &str, id: &str, instance: &str, service: &str) -> NewDelivery {
        NewDelivery {
            id: id.to_owned(),
            instance: instance.to_owned(),
            service: service.to_owned(),
            lane: Lane::own(product, instance),
            order_key: None,
            shape: None,
        }
    }
}

/// A lease a worker asks for: deliveries are its `owner`'s from `now` for `length`.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub owner: &'a str,
    pub now: Millis,
    pub length: Duration,
}

impl<'a> Lease<'a> {
    pub fn new(owner: &'a str, now: Millis, length: Duration) -> Lease<'a> {
        Lease { owner, now, length }
    }

    /// When it runs out.
    pub fn until(&self) -> Millis {
        self.now.saturating_add(crate::clock::millis(self.length))
    }
}

/// A delivery a worker claimed, with everything needed to attempt it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub event_id: String,
    pub product: String,
    pub instance: String,
    pub service: String,
    pub payload: String,
    /// Attempts made so far (over the delivery's whole life).
    pub attempts: u32,
    /// Failures since the last success of a redelivery: the position in the schedule.
    pub step: u32,
    /// Targets already delivered to: never sent again for this delivery.
    pub done_targets: Vec<String>,
    /// The product's [`Generation`] now (its services as the attempt must see them), or
    /// `None` if the product was removed.
    pub generation: Option<Generation>,
    /// The keys of this instance's targets that answered 410 Gone.
    pub disabled_targets: Vec<String>,
    /// The lane it was claimed from.
    pub lane: String,
    /// How often its destination asked it to wait (`429`, `Retry-After`).
    pub throttles: u32,
    /// Its event's [`NewEvent::trace_context`].
    pub trace_context: Option<String>,
    /// The delivery it is the fallback for (docs/SHAPING.md, "Fallback routes").
    pub fallback_for: Option<String>,
    /// For a digest: the payloads of its events, oldest first (`payload` is the first).
    pub digest: Option<Vec<String>>,
}

#[cfg(test)]
impl Claimed {
    /// Delivery `id` of product `p1`'s `instance`, an echo service, as first claimed with
    /// the echo's payload: the workers' tests change what they look at.
    pub(crate) fn for_tests(id: &str, instance: &str) -> Claimed {
        Claimed {
            id: id.to_owned(),
            event_id: "evt_1".to_owned(),
            product: "p1".to_owned(),
            instance: instance.to_owned(),
            service: "echo".to_owned(),
            payload: crate::echo::PAYLOAD.to_owned(),
            attempts: 0,
            step: 0,
            done_targets: Vec::new(),
            generation: Some(1),
            disabled_targets: Vec::new(),
            lane: "lane".to_owned(),
            throttles: 0,
            trace_context: None,
            fallback_for: None,
            digest: None,
        }
    }
}

/// How one request of an attempt ended, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Delivered,
    /// Refused or unanswered: it counts towards the target's health.
    Failed,
    /// The target is gone (410, or its platform's "gone" answer).
    Disabled,
    /// Nothing to send (not listening, nothing built, sent in an earlier attempt).
    Skipped,
    /// This machine ran short (file descriptors, memory): the target is not to blame.
    Local,
    /// The destination asked for a wait (`429`, `Retry-After`): not a failure of the
    /// target, and not a step of the retry schedule.
    Throttled,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 6] = [
        AttemptOutcome::Delivered,
        AttemptOutcome::Failed,
        AttemptOutcome::Disabled,
        AttemptOutcome::Skipped,
        AttemptOutcome::Local,
        AttemptOutcome::Throttled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Disabled => "disabled",
            AttemptOutcome::Skipped => "skipped",
            AttemptOutcome::Local => "local",
            AttemptOutcome::Throttled => "throttled",
        }
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AttemptOutcome {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        AttemptOutcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == s)
            .ok_or_else(|| format!("unknown attempt outcome `{s}`"))
    }
}

/// One request of one attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttemptRecord {
    /// The delivery's attempt number, from 1.
    pub number: u32,
    pub at: Millis,
    pub duration_ms: u64,
    /// Where it went, redacted; none when nothing was sent.
    pub target: Option<String>,
    pub outcome: AttemptOutcome,
    pub status: Option<u16>,
    /// Why it failed, redacted.
    pub error: Option<String>,
}

/// What a worker reports back for a claimed delivery.
#[derive(Debug, Clone)]
pub struct Finish {
    pub status: Status,
    /// When it is due again (for [`Status::Failed`]).
    pub next_at: Option<Millis>,
    pub step: u32,
    pub done_targets: Vec<String>,
    pub last_error: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    /// Targets that answered 410 in this attempt.
    pub disable: Vec<DisabledTarget>,
    /// How each target fared, for its health (see [`Store::finish_batch`]).
    pub health: Vec<upkeep::TargetResult>,
    /// How long the slowest request of the attempt took: its lane's answer time.
    pub latency_ms: Option<u64>,
    /// The destination asked for no request before this (`Retry-After`): its lanes
    /// wait until then.
    pub hold_until: Option<Millis>,
    /// It was asked to wait rather than refused: the attempt did not use a step of the
    /// retry schedule.
    pub throttled: bool,
    /// The delivery to its service's fallback, stored with this outcome when it ends
    /// the delivery dead or disabled ([`fallback`](super::fallback)).
    pub fallback: Option<NewDelivery>,
}

impl Finish {
    /// A finish to `status` that reports nothing else (no attempt, step 0, no target
    /// news): what its caller knows is filled in over it.
    pub fn to(status: Status) -> Finish {
        Finish {
            status,
            next_at: None,
            step: 0,
            done_targets: Vec::new(),
            last_error: None,
            attempts: Vec::new(),
            disable: Vec::new(),
            health: Vec::new(),
            latency_ms: None,
            hold_until: None,
            throttled: false,
            fallback: None,
        }
    }

    /// What this attempt tells `lane`, its delivery's lane.
    pub fn heard<'a>(&self, lane: &'a str) -> Heard<'a> {
        Heard {
            lane,
            latency_ms: self.latency_ms,
            hold_until: self.hold_until,
        }
    }
}

/// A delivery as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub product: String,
    pub instance: String,
    pub service: String,
    pub status: Status,
    pub attempts: u32,
    pub next_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub last_error: Option<String>,
    /// Its service orders deliveries by a payload value (`order_by`): one dead lets the
    /// next of its value go on.
    pub ordered: bool,
    /// It went dead (or its target was disabled) and its event went to this delivery
    /// of its service's fallback.
    pub fell_back_to: Option<super::fallback::FallbackLink>,
    /// It is a fallback: the delivery that went dead (or was disabled) before it.
    pub fallback_for: Option<super::fallback::FallbackLink>,
    /// For a `superseded` delivery, the newer one that replaced it; for a `digested`
    /// one, the digest its event went into.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// For a digest: how many events it gathers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest_events: Option<u32>,
}

/// A stored event with its deliveries, as `lookout replay` reads history.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub id: String,
    pub product: String,
    /// The payload exactly as received.
    pub payload: String,
    pub received_at: Millis,
    /// Every delivery of the event (the first ones and any added later), oldest first.
    pub deliveries: Vec<DeliveryRow>,
}

/// Which stored events to read: one batch, oldest first (or newest first).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only those received at or after this time.
    pub since: Millis,
    pub product: Option<String>,
    /// Only those after this `(received_at, id)` in the batch order: the last of the
    /// previous batch.
    pub after: Option<(Millis, String)>,
    /// At most this many (at least one).
    pub limit: usize,
    /// Newest first (the console's preview compares only the latest events of a window).
    pub newest_first: bool,
}

/// The SQL of an [`EventFilter`]'s order: the `ORDER BY` direction, and how the keyset
/// compares rows past the previous batch's last.
pub(super) fn events_order(newest_first: bool) -> (&'static str, &'static str) {
    if newest_first {
        ("DESC", "<")
    } else {
        ("ASC", ">")
    }
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<Status>,
    pub service: Option<String>,
    pub product: Option<String>,
    /// Only those last updated at or after this time.
    pub updated_since: Option<Millis>,
    /// At most this many, newest first (0: no limit).
    pub limit: usize,
    /// Keyset pagination: only those listed after this one (its `updated_at` and id),
    /// in the newest-first order.
    pub after: Option<(Millis, String)>,
}

/// Counts for `lookout stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub events: u64,
    /// Deliveries by status.
    pub by_status: Vec<(Status, u64)>,
    /// Deliveries by service and status.
    pub by_service: Vec<(String, Status, u64)>,
    /// Pending or failed: still to be sent.
    pub queue_depth: u64,
    /// When the earliest queued delivery is due.
    pub next_due: Option<Millis>,
    pub attempts: u64,
}

impl Stats {
    /// Sorts `by_service` and derives `by_status` and `queue_depth` from it: a store
    /// fills in the per-service counts, the rest follows.
    pub fn tally(&mut self) {
        self.by_service.sort();
        self.by_status.clear();
        self.queue_depth = 0;
        for status in Status::ALL {
            let count: u64 = self
                .by_service
                .iter()
                .filter(|(_, s, _)| *s == status)
                .map(|(_, _, n)| n)
                .sum();
            // Only services that coalesce or send digests ever have these: listed when
            // there are some.
            let shaping_only = matches!(status, Status::Superseded | Status::Digested);
            if count > 0 || !shaping_only {
                self.by_status.push((status, count));
            }
            if status.is_queued() {
                self.queue_depth += count;
            }
        }
    }
}

/// How many attempts per minute ended how, and how long recent ones took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// (minute's start, outcome, count), oldest first.
    pub counts: Vec<(Millis, AttemptOutcome, u64)>,
    /// (when, duration in ms) of at most [`ACTIVITY_DURATIONS`] recent attempts.
    pub durations: Vec<(Millis, u64)>,
    /// The product's deliveries by status, all time.
    pub by_status: Vec<(Status, u64)>,
}

/// What [`Store::activity`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityWindow {
    /// Attempts at or after this are counted.
    pub since: Millis,
    /// Attempts at or after this have their durations returned.
    pub durations_since: Millis,
}

/// How many durations [`Store::activity`] returns at most: enough for percentiles per
/// minute over an hour of a busy product, few enough to stay quick.
pub const ACTIVITY_DURATIONS: usize = 20_000;

/// The grain of [`Activity::counts`]: each attempt is stored with the start of its
/// minute (`at - at % 60000`, migration 0012), so the counts come from one index in
/// order, without joining deliveries (`sql::ACTIVITY_COUNTS`).
const MINUTE: Millis = 60_000;

/// The start of the minute `at` falls in, as the attempts' `minute` column has it.
pub(super) fn minute_of(at: Millis) -> Millis {
    at - at.rem_euclid(MINUTE)
}

/// Where a delivery stands, as [`DELIVERY_STATE`](super::sql::DELIVERY_STATE) reads it
/// (its columns, in order), for [`Store::waiting`](super::Store::waiting).
pub(super) struct DeliveryState {
    pub(super) status: String,
    pub(super) next_at: Option<Millis>,
    pub(super) lease_until: Option<Millis>,
    pub(super) lane: Option<String>,
    pub(super) order_key: Option<String>,
}

impl DeliveryState {
    /// Whether it waits at all: a delivery that ended does not.
    pub(super) fn is_queued(&self) -> super::Result<bool> {
        Ok(super::status_of(&self.status)?.is_queued())
    }

    /// The order key of a held delivery (due only when the one before it is finished):
    /// it waits behind the queued delivery of that key.
    pub(super) fn held_by(&self) -> Option<&str> {
        self.order_key.as_deref().filter(|_| self.next_at.is_none())
    }

    /// Why it is not being attempted at `now`, given the delivery it is held behind and
    /// its lane as read at `now`.
    pub(super) fn waiting(
        self,
        behind: Option<String>,
        lane: Option<DueLane>,
        now: Millis,
    ) -> Waiting {
        let queued = Queued {
            next_at: self.next_at,
            lease_until: self.lease_until,
            behind,
            lane,
        };
        queued.waiting(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
        }
        assert!("lost".parse::<Status>().is_err());
    }
}
