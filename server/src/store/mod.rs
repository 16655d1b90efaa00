//! The durable outbox behind `lookout serve`: products and their services, accepted
//! events, one delivery per (event, configured service), and every attempt.
//!
//! Everything the server and the workers need goes through the [`Store`] trait, so the
//! SQL stays in one implementation per database: [`sqlite`] (the embedded default, one
//! process) and [`postgres`] (shared by many intake and worker processes). [`suite`] is
//! the one test suite every implementation must pass.
//!
//! The life of a delivery:
//!
//! ```text
//! accept ──▶ pending ──claim──▶ (attempt) ──▶ delivered | skipped | disabled
//!                ▲                  │
//!                │                  ├──▶ failed (due again after the next delay) ──claim──▶ …
//!             redeliver             └──▶ dead (the schedule is used up, or it can never work)
//! ```
//!
//! A claim is a lease: the delivery is not handed out again until the lease runs out or
//! the claim is finished or released, so a worker that dies loses nothing.

#[cfg(test)]
mod lanes_suite;
pub mod postgres;
#[cfg(test)]
mod shaping_suite;
pub mod sqlite;
#[cfg(test)]
mod suite;
pub mod upkeep;
#[cfg(test)]
mod upkeep_suite;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::lanes::{Heard, Lane, Waiting};
use crate::tokens::{NewToken, Token};
use lookout::config::{Instance, ServiceTable, parse_services};
use lookout::options::OptionProblem;
pub use upkeep::Upkeep;

pub use crate::clock::{Millis, millis, now_ms};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (I/O, a broken file, a constraint).
    #[error("database: {0}")]
    Backend(String),
    #[error("{0}")]
    NotFound(String),
    /// A stored value that does not decode (a file written by something else).
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

// How both stores keep structured values (JSON text) and statuses (their names), and
// read them back: a value that does not decode is a corrupt record.

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn status_of(text: &str) -> Result<Status> {
    text.parse().map_err(StoreError::Corrupt)
}

/// A console session, as kept and listed: never its secret (the cookie), only its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsoleSession {
    /// `ses_…`: how an admin names it to revoke it; it opens nothing.
    pub id: String,
    /// The one product it may see (a portal link's), or `None`: everything (admin).
    pub product: Option<String>,
    /// The portal link that opened it: revoking the link ends it.
    pub link: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// A portal link, as kept and listed: never its signature, so an id opens nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortalLink {
    /// `lnk_…`.
    pub id: String,
    /// The one product it opens, or `None` for an admin link (`make demo`'s).
    pub product: Option<String>,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// The columns of a [`ConsoleSession`], in order, from `console_sessions s`.
const SESSION_COLUMNS: &str = "s.id, s.product, s.link_id, s.created_at, s.expires_at";
/// A session opened by a link lasts only while the link is kept: revoking a link ends
/// its sessions even if one was stored while the link was being revoked.
const LINK_STILL_THERE: &str =
    "(s.link_id IS NULL OR EXISTS (SELECT 1 FROM portal_links l WHERE l.id = s.link_id))";
/// The columns of a [`PortalLink`], in order.
const LINK_COLUMNS: &str = "id, product, created_at, expires_at";

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

/// One configured service of a product, as stored: its options are the raw table
/// (secrets included; the database file is the secret store, like the config file).
#[derive(Clone, PartialEq)]
pub struct StoredInstance {
    pub name: String,
    pub service: String,
    pub options: Map<String, Value>,
}

impl StoredInstance {
    /// Validates the stored options for the named service (`enabled` aside).
    pub fn instance(&self) -> std::result::Result<Instance, Vec<OptionProblem>> {
        validate_stored(&self.name, &self.service, &self.options)
    }

    /// False when it was switched off (the console keeps its options meanwhile).
    pub fn is_enabled(&self) -> bool {
        is_enabled(&self.options)
    }
}

/// The option that switches a stored service off without losing its options, as
/// `enabled = false` does in the config file.
pub const ENABLED: &str = "enabled";

/// Validates stored options for the named service, `enabled` aside.
pub fn validate_stored(
    name: &str,
    service: &str,
    options: &Map<String, Value>,
) -> std::result::Result<Instance, Vec<OptionProblem>> {
    let mut options = options.clone();
    options.remove(ENABLED);
    Instance::new(name, service, &options)
}

/// Whether stored options leave their service on.
pub fn is_enabled(options: &Map<String, Value>) -> bool {
    options.get(ENABLED) != Some(&Value::Bool(false))
}

impl StoredInstance {
    /// The options as JSON with every secret replaced; `None` when they no longer
    /// validate (then nothing of them is shown).
    /// The options as shown: secret options masked, and every secret value redacted
    /// wherever else it appears (a webhook key pasted into `channel`).
    pub fn redacted_options(&self) -> Option<Value> {
        self.instance().ok().map(|instance| {
            let options = &instance.options;
            options.redactor().redact_json(&options.to_redacted_json())
        })
    }
}

// Never print the raw options: they hold the secrets.
impl fmt::Debug for StoredInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredInstance({} = {})", self.name, self.service)
    }
}

/// Turns a `services` table (the same shape as the config file's, parsed by the same
/// [`parse_services`]) into the instances a store keeps: the options as written.
pub fn instances_from_table(
    table: &Map<String, Value>,
) -> std::result::Result<Vec<StoredInstance>, Vec<OptionProblem>> {
    Ok(parse_services(table)?
        .into_iter()
        .map(StoredInstance::from)
        .collect())
}

impl From<ServiceTable> for StoredInstance {
    fn from(table: ServiceTable) -> StoredInstance {
        StoredInstance {
            name: table.instance.name.clone(),
            service: table.instance.service_name().to_owned(),
            options: table.options,
        }
    }
}

/// A target that answered 410 Gone: it is not sent to again for this product.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DisabledTarget {
    pub instance: String,
    /// [`target_key`](lookout::Outgoing::target_key) of the request.
    pub key: String,
    /// Where it went, redacted.
    pub target: String,
    pub reason: String,
    pub at: Millis,
}

/// A target [`Store::finish_batch`] disabled because it kept failing.
#[derive(Debug, Clone, PartialEq)]
pub struct Disabled {
    pub product: String,
    /// The delivery whose attempt was the last failure.
    pub delivery: String,
    pub target: DisabledTarget,
}

/// A product: its configured services and the targets that asked to be left alone.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: String,
    pub instances: Vec<StoredInstance>,
    pub disabled: Vec<DisabledTarget>,
    /// The instance told when a target is disabled or a delivery dies.
    pub alerts: Option<String>,
    /// The services' [`Generation`] when they were read (read first: the services may
    /// be newer than it, never older).
    pub generation: Generation,
}

impl Product {
    /// The product as JSON for people: options with every secret replaced (options that
    /// no longer validate are not shown at all), and the disabled targets.
    pub fn to_redacted_json(&self) -> Value {
        serde_json::to_value(self.redacted()).unwrap_or_default()
    }

    /// [`Product::to_redacted_json`], typed: what `GET /v1/products/{id}` answers.
    pub fn redacted(&self) -> ProductView {
        let services: Map<String, Value> = self
            .instances
            .iter()
            .map(|instance| {
                let mut shown = Map::new();
                shown.insert("service".into(), Value::from(instance.service.clone()));
                match instance.redacted_options() {
                    Some(Value::Object(options)) => shown.extend(options),
                    _ => {
                        shown.insert("invalid".into(), Value::Bool(true));
                    }
                }
                (instance.name.clone(), Value::Object(shown))
            })
            .collect();
        ProductView {
            id: self.id.clone(),
            services,
            disabled_targets: self.disabled.clone(),
            alerts: self.alerts.clone(),
        }
    }
}

/// A product as shown: its configured services by name, each with its `service` and
/// its options, secrets redacted (`"invalid": true` instead of options that no longer
/// validate).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductView {
    pub id: String,
    #[schema(value_type = Object)]
    pub services: Map<String, Value>,
    pub disabled_targets: Vec<DisabledTarget>,
    /// The configured service told about disabled targets and dead deliveries.
    pub alerts: Option<String>,
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

/// Counts the changes to every product's services (a trigger on `products` and
/// `instances` in both stores), so that the intake can route events with a copy of
/// them and still never store an event routed with services that changed.
pub type Generation = i64;

impl Admission {
    /// For an event whose key is already recorded with `digest` and `answer`.
    fn of_earlier(key: &IdempotencyKey, digest: &str, answer: String) -> Admission {
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
    /// For a digest: the payloads of its events, oldest first (`payload` is the first).
    pub digest: Option<Vec<String>>,
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
}

impl Finish {
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
fn events_order(newest_first: bool) -> (&'static str, &'static str) {
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

/// How many attempts per time bucket ended how, and how long recent ones took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// (bucket start, outcome, count), oldest first.
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
    /// The width of a count's bucket, in ms.
    pub bucket: Millis,
    /// Attempts at or after this have their durations returned.
    pub durations_since: Millis,
}

/// How many durations [`Store::activity`] returns at most: enough for percentiles per
/// minute over an hour of a busy product, few enough to stay quick.
pub const ACTIVITY_DURATIONS: usize = 20_000;

/// Everything `lookout serve` keeps. Implementations must be safe to share between the
/// intake and many workers; every method is one transaction.
#[async_trait]
pub trait Store: Upkeep + Send + Sync + 'static {
    /// Replaces a product's configured services (creating the product).
    async fn put_product(&self, id: &str, instances: &[StoredInstance]) -> Result<()>;
    /// Adds or replaces one configured service of a product (creating the product).
    /// Targets of that instance that were disabled by a 410 are enabled again.
    async fn put_instance(&self, product: &str, instance: &StoredInstance) -> Result<()>;
    /// Removes one configured service; false if there was none.
    async fn remove_instance(&self, product: &str, instance: &str) -> Result<bool>;
    /// Removes a product and its services (its events and deliveries stay as history);
    /// false if there was none.
    async fn remove_product(&self, id: &str) -> Result<bool>;
    async fn product(&self, id: &str) -> Result<Option<Product>>;
    async fn products(&self) -> Result<Vec<Product>>;

    /// Stores events and their deliveries in one transaction (one commit, one fsync):
    /// all or nothing. An event whose idempotency key is already recorded is not stored
    /// (see [`Admission`]); keys repeated within `events` resolve to the first. Only
    /// after this returns may the intake say "accepted".
    async fn accept_batch(&self, events: &[NewEvent]) -> Result<Vec<Admission>>;

    /// [`Store::accept_batch`] for one event.
    async fn accept(&self, event: &NewEvent) -> Result<Admission> {
        let admissions = self.accept_batch(std::slice::from_ref(event)).await?;
        admissions
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Backend("no admission for the event".into()))
    }

    /// Leases up to `limit` deliveries due at `now` to `owner` until `now + lease`,
    /// taking lanes in turn (the one served longest ago first) and from each only what
    /// its destination's pace and its cap on attempts in flight allow now (see
    /// [`lanes`](crate::lanes)); within a lane, the earliest due first.
    async fn claim(
        &self,
        owner: &str,
        now: Millis,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>>;
    /// Records finished attempts, `(delivery id, what happened)`, at `now`, in one
    /// transaction: each attempt and its delivery's new state, ending the lease, and
    /// each target's health (the one place it is written): an answer starts its failures
    /// in a row over, a failure adds one, and a target whose failures now meet `rule` is
    /// disabled (returned, for alerts). A state is only changed while `owner` still holds
    /// the lease; the attempts and health are recorded either way (they happened).
    /// Unknown deliveries are passed over.
    async fn finish_batch(
        &self,
        owner: &str,
        finished: &[(String, Finish)],
        now: Millis,
        rule: &upkeep::DisableRule,
    ) -> Result<Vec<Disabled>>;

    /// [`Store::finish_batch`] for one attempt, now, with the default rule.
    async fn finish(&self, id: &str, owner: &str, finish: &Finish) -> Result<()> {
        let batch = [(id.to_owned(), finish.clone())];
        let rule = upkeep::DisableRule::default();
        self.finish_batch(owner, &batch, now_ms(), &rule).await?;
        Ok(())
    }

    /// Has `wake` notified whenever another process makes work due (PostgreSQL:
    /// `LISTEN`), for as long as `wake` lives. Nothing to do for a store only one
    /// process uses: its intake wakes its workers itself.
    async fn listen_for_work(&self, wake: Arc<tokio::sync::Notify>) -> Result<()> {
        let _ = wake;
        Ok(())
    }
    /// Hands back every lease `owner` holds, due at once (shutdown).
    async fn release(&self, owner: &str) -> Result<()>;
    /// Hands back every lease of every owner. Only for a store used by one process at
    /// a time (SQLite, under its lock file), at start, after a crash.
    async fn release_all(&self) -> Result<()>;
    /// When the earliest queued delivery is due (leased ones included).
    async fn next_due(&self) -> Result<Option<Millis>>;

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRow>>;
    /// The deliveries whose events `id` carries: those it superseded (coalescing) or
    /// gathered (a digest), oldest first.
    async fn shaped_into(&self, id: &str) -> Result<Vec<DeliveryRow>>;
    /// Why a delivery is not being attempted at `now`; `None` unless it is queued.
    async fn waiting(&self, id: &str, now: Millis) -> Result<Option<Waiting>>;
    /// One delivery with every attempt, oldest first.
    async fn delivery(&self, id: &str) -> Result<Option<(DeliveryRow, Vec<AttemptRecord>)>>;
    /// Makes a delivery due again at `now` with a fresh schedule. A delivery that was
    /// delivered is sent to every target again; otherwise targets that already got it
    /// are left alone. False if there is no such delivery.
    async fn redeliver(&self, id: &str, now: Millis) -> Result<bool>;
    async fn stats(&self) -> Result<Stats>;
    /// A product's attempts for the console's overview: counts per `window.bucket` (ms)
    /// and outcome since `window.since`, the durations of the most recent ones since
    /// `window.durations_since`, and its deliveries by status.
    async fn activity(&self, product: &str, window: ActivityWindow) -> Result<Activity>;
    /// The payload of a stored event, exactly as received.
    async fn event_payload(&self, id: &str) -> Result<Option<String>>;

    /// One batch of stored events (see [`EventFilter`]), each with its deliveries.
    async fn events_since(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>>;
    /// Adds deliveries to a stored event, due at `now`. A delivery whose id is already
    /// stored is left as it is, so adding the same ones again is harmless; returns how
    /// many were added.
    async fn enqueue(
        &self,
        event_id: &str,
        product: &str,
        deliveries: &[NewDelivery],
        now: Millis,
    ) -> Result<usize>;

    /// Stores a new API token: its digest and scope, never the token.
    async fn put_token(&self, token: &NewToken) -> Result<()>;
    /// The token whose secret has this digest, if it exists (expired ones included).
    async fn token_by_digest(&self, digest: &str) -> Result<Option<Token>>;
    /// Every token, oldest first.
    async fn tokens(&self) -> Result<Vec<Token>>;
    /// Deletes a token; false if there was none.
    async fn revoke_token(&self, id: &str) -> Result<bool>;
    /// Stores a new console session under the digest of its secret (never the secret)
    /// and forgets the expired ones. False, and nothing stored, when the session comes
    /// from a portal link that is revoked or expired by now.
    async fn put_session(&self, session: &ConsoleSession, digest: &str) -> Result<bool>;
    /// The session whose secret has this digest, if it has not expired at `now` and the
    /// link that opened it (if any) still exists.
    async fn session_by_digest(&self, digest: &str, now: Millis) -> Result<Option<ConsoleSession>>;
    /// The sessions not expired at `now`, oldest first.
    async fn sessions(&self, now: Millis) -> Result<Vec<ConsoleSession>>;
    /// Ends a session; false if there was none.
    async fn end_session(&self, id: &str) -> Result<bool>;
    /// Stores a new portal link and forgets the expired ones.
    async fn put_link(&self, link: &PortalLink) -> Result<()>;
    /// A portal link by its id, expired or not.
    async fn link(&self, id: &str) -> Result<Option<PortalLink>>;
    /// The portal links not expired at `now`, oldest first.
    async fn links(&self, now: Millis) -> Result<Vec<PortalLink>>;
    /// Deletes a portal link and ends every session it opened, at once; false if there
    /// was no such link.
    async fn revoke_link(&self, id: &str) -> Result<bool>;
    /// Commits a one-row write: whether the store can take events right now.
    async fn check_writable(&self, now: Millis) -> Result<()>;
}

/// Opens the store a `--database` argument names: a `postgres://` (or `postgresql://`)
/// URL, or else a SQLite file path (created if missing).
pub async fn open(database: &str) -> Result<Arc<dyn Store>> {
    if is_postgres(database) {
        return Ok(Arc::new(postgres::PostgresStore::open(database).await?));
    }
    Ok(Arc::new(
        sqlite::SqliteStore::open(sqlite_path(database)?).await?,
    ))
}

/// Whether `database` names a PostgreSQL database, shared by several processes.
pub fn is_postgres(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

fn sqlite_path(database: &str) -> Result<&str> {
    if database.contains("://") && !database.starts_with("sqlite://") {
        return Err(StoreError::Backend(format!(
            "unsupported database `{}://…` (give a SQLite file path or a postgres:// URL)",
            database.split("://").next().unwrap_or_default()
        )));
    }
    Ok(database.strip_prefix("sqlite://").unwrap_or(database))
}

/// The `--database` argument as it may be printed: a URL's password is replaced.
pub fn shown_database(database: &str) -> String {
    match url::Url::parse(database) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Brackets would be percent-encoded in a URL: a plain word.
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => database.to_owned(),
    }
}

/// Keeps a SQLite store to one `serve` process; released when dropped (or when the
/// process dies: it is an OS file lock). Holds nothing for PostgreSQL, which any number
/// of processes share.
#[derive(Debug)]
pub struct ServeLock {
    _file: Option<std::fs::File>,
}

/// Opens the store for `serve`. A SQLite file is locked to this process (a second
/// `serve` on the same file is refused), and leases left by a process that was killed
/// are handed back at once: no other process can hold one. On PostgreSQL other workers
/// may hold leases right now: a killed process's leases run out by themselves.
pub async fn open_for_serve(database: &str) -> Result<(Arc<dyn Store>, ServeLock)> {
    if is_postgres(database) {
        return Ok((open(database).await?, ServeLock { _file: None }));
    }
    let path = sqlite_path(database)?;
    let lock_path = format!("{path}.serve-lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).write(true).truncate(false);
    // Readable by us only (another user who can open it could flock it and keep
    // `serve` from starting), and never through a symlink planted in its place.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let file = options
        .open(&lock_path)
        .map_err(|e| StoreError::Backend(format!("cannot open {lock_path}: {e}")))?;
    sqlite::make_private(std::path::Path::new(&lock_path))?;
    file.try_lock()
        .map_err(|_| StoreError::Backend(format!("another `lookout serve` is using {path}")))?;
    let store = sqlite::SqliteStore::open(path).await?;
    store.release_all().await?;
    Ok((Arc::new(store), ServeLock { _file: Some(file) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_events_filter_replaces_the_services_default_and_is_kept_in_store() {
        let table = json!({
            "hook": {"service": "echo", "urls": "http://127.0.0.1:1/x",
                     "events": ["Item.*", "comment.created"]},
        });
        let stored = instances_from_table(table.as_object().unwrap()).unwrap();
        let instance = stored[0].instance().unwrap();
        let event = |model: &str, action: &str| {
            let json = format!(
                r#"{{"model":"{model}","action":"{action}","product":{{"id":1,"name":"P"}},"attributes":{{}}}}"#
            );
            lookout::Event::parse(&json).unwrap()
        };
        assert!(instance.listens_to(&event("Item", "updated")));
        assert!(instance.listens_to(&event("Comment", "created")));
        assert!(!instance.listens_to(&event("Comment", "deleted")));
        assert!(
            !instance.listens_to(&event("Block", "created")),
            "echo's own default is *"
        );

        let bad = json!({
            "a": {"service": "echo", "urls": "http://127.0.0.1:1/x", "events": ["Widget.*"]},
            "b": {"service": "echo", "urls": "http://127.0.0.1:1/x", "events": ["Item.archived", "Item"]},
            "c": {"service": "echo", "urls": "http://127.0.0.1:1/x", "events": "Item.*"},
        });
        let problems = instances_from_table(bad.as_object().unwrap()).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:#?}");
        assert!(
            shown[0].starts_with("[services.a] events: `Widget.*`: unknown model `Widget`"),
            "{shown:#?}"
        );
        assert!(shown[1].contains("unknown action `archived`"), "{shown:#?}");
        assert!(
            shown[2].contains("`Item` is not `Model.action`"),
            "{shown:#?}"
        );
        assert!(
            shown[3].starts_with("[services.c] events: expected a list"),
            "{shown:#?}"
        );
    }

    #[test]
    fn tables_validate_like_the_config_file() {
        let table = json!({
            "hook": {"service": "echo", "urls": "http://127.0.0.1:1/x"},
            "off": {"service": "echo", "enabled": false},
            "bad": {"service": "echo", "ur": "x"},
            "what": {"service": "nope"},
            "sp ace": {}
        });
        let problems = instances_from_table(table.as_object().unwrap()).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        assert!(shown.iter().any(|p| p.contains("unknown service `nope`")));
        assert!(shown.iter().any(|p| p.contains("not a valid name")));
        let ok = json!({
            "hook": {"service": "echo", "urls": "http://127.0.0.1:1/x"},
            "off": {"enabled": false}
        });
        let found = instances_from_table(ok.as_object().unwrap()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].service, "echo");
        assert!(!format!("{:?}", found[0]).contains("127.0.0.1"));
    }

    #[test]
    fn databases_are_told_apart_and_passwords_never_shown() {
        assert!(is_postgres("postgres://lookout@db.internal/lookout"));
        assert!(is_postgres("postgresql://db.internal/lookout"));
        assert!(!is_postgres("lookout.db"));
        assert!(!is_postgres("sqlite:///var/lib/lookout.db"));
        assert_eq!(sqlite_path("sqlite://x.db").unwrap(), "x.db");
        assert!(sqlite_path("mysql://db/x").is_err());
        let shown = shown_database("postgres://lookout:s3cr3t-pw@db.internal:5433/lookout");
        assert_eq!(
            shown,
            "postgres://lookout:redacted@db.internal:5433/lookout"
        );
        assert_eq!(shown_database("lookout.db"), "lookout.db");
        assert_eq!(
            shown_database("postgres://lookout@db/x"),
            "postgres://lookout@db/x"
        );
    }

    #[test]
    fn statuses_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
        }
        assert!("lost".parse::<Status>().is_err());
    }
}
