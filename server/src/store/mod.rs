//! The durable outbox behind `lookout serve`: products and their services, accepted
//! events, one delivery per (event, configured service), and every attempt.
//!
//! Everything the server and the workers need goes through the [`Store`] trait, so the
//! SQL stays in one implementation per database: [`sqlite`] (the embedded default, one
//! process) and [`postgres`] (shared by many intake and worker processes). [`suite`] is
//! the one test suite every implementation must pass.
//!
//! What is stored, by job: [`products`] (a product's services as stored), [`deliveries`]
//! (events, deliveries, attempts and the rows and counts read back), [`upkeep`] (target
//! health, pruning); [`database`] opens the store a `--database` argument names.
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

mod columns;
mod database;
mod deliveries;
pub mod fallback;
#[cfg(test)]
mod fallback_suite;
#[cfg(test)]
mod lanes_suite;
pub mod postgres;
mod products;
#[cfg(test)]
mod shaping_suite;
mod sql;
pub mod sqlite;
#[cfg(test)]
mod suite;
pub mod upkeep;
#[cfg(test)]
mod upkeep_suite;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::lanes::Waiting;
use crate::tokens::{NewToken, Token};
pub use upkeep::Upkeep;

pub use crate::clock::{Millis, millis, now_ms};
pub use database::{ServeLock, is_postgres, open, open_for_serve, shown_database};
use deliveries::events_order;
pub use deliveries::{
    ACTIVITY_DURATIONS, Activity, ActivityWindow, Admission, AttemptOutcome, AttemptRecord,
    Claimed, DeliveryFilter, DeliveryRow, EventFilter, Finish, IdempotencyKey, Lease, NewDelivery,
    NewEvent, Stats, Status, StoredEvent,
};
pub use products::{
    Disabled, DisabledTarget, ENABLED, Generation, Product, ProductView, StoredInstance,
    instances_from_table, is_enabled, product_from_table, validate_stored,
};

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

/// What [`Store::enqueue`] answers for an event that is not (or no longer) stored.
fn no_event(id: &str) -> StoreError {
    StoreError::NotFound(format!("no event `{id}`"))
}

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

    /// Leases up to `limit` deliveries due at the lease's `now` to its owner until it ends,
    /// taking lanes in turn (the one served longest ago first) and from each only what
    /// its destination's pace and its cap on attempts in flight allow now (see
    /// [`lanes`](crate::lanes)); within a lane, the earliest due first.
    async fn claim(&self, lease: Lease<'_>, limit: usize) -> Result<Vec<Claimed>>;
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
    /// Adds deliveries to a stored event (of its product), due at `now`. A delivery
    /// whose id is already stored is left as it is, so adding the same ones again is
    /// harmless; returns how many were added. An event no longer stored is not found.
    async fn enqueue(
        &self,
        event_id: &str,
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
