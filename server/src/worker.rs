//! The delivery workers behind `lookout serve`: claim due deliveries from the store, make
//! one attempt each, record it, and schedule the next one.
//!
//! One attempt of a delivery sends the stored event with the product's *current* options
//! the way every caller does, through the service's own `send` (see
//! [`run_attempt`](lookout::dispatch::run_attempt)), with a one-try transport
//! ([`Transport::one_try`]) that skips each target that already got it: a service with
//! several targets (webhook `urls`) that reached two of three resends only to the third.
//! The delivery id is the stored one, so every attempt carries the same `webhook-id` and
//! receivers can drop duplicates.
//!
//! Each attempt is a single try per request, HTTP or email (no retries inside it): the
//! long schedule here is the retry policy. After the last delay the delivery is
//! dead-lettered. A target answering 410 Gone is disabled for the product and not sent
//! to again.
//!
//! Outcomes are recorded in batches: every attempt that finished while the previous
//! batch was being committed goes into the next transaction. A delivery stays leased
//! until its outcome is recorded, so nothing is claimed twice meanwhile. Workers wake
//! when work arrives (the intake's notify in the same process; `LISTEN` on PostgreSQL
//! for events accepted elsewhere) and poll only as a fallback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::attempt::{attempt, resolve};
use crate::metrics::{Counter, Metrics};
use crate::policy::WorkerConfig;
use crate::routing::{RouteCache, Routes};
use crate::shaping::fallback;
use crate::store::{AttemptOutcome, Claimed, Disabled, Finish, Lease, Status, Store, now_ms};
use lookout::delivery::Transport;

/// What a worker needs, shared by every attempt.
#[derive(Clone)]
pub struct Worker {
    pub store: Arc<dyn Store>,
    /// The products' services, resolved once per change (shared with the intake).
    pub routes: Arc<RouteCache>,
    pub transport: Transport,
    pub config: Arc<WorkerConfig>,
    pub metrics: Arc<Metrics>,
    /// Notified when new deliveries may be due (an event was accepted).
    pub wake: Arc<Notify>,
}

impl Worker {
    /// Claims and attempts due deliveries until `stop` turns true; then lets attempts in
    /// flight finish within the grace period, and hands the rest back to the store.
    ///
    /// Claiming runs beside the attempts, up to `concurrency` deliveries ahead of them:
    /// a claim is a store round trip (behind a commit's fsync on SQLite) that takes
    /// longer than a fast attempt, and slots that waited for it would stand idle.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        if let Err(err) = self.store.listen_for_work(self.wake.clone()).await {
            tracing::warn!(
                "cannot listen for new deliveries ({err}): polling every {:?}",
                self.config.poll
            );
        }
        let concurrency = self.config.concurrency.max(1);
        let (outcomes, recorded) = mpsc::channel(concurrency * 2);
        let recorder = tokio::spawn(self.clone().record_outcomes(recorded));
        let (ahead, mut claimed) = mpsc::channel(concurrency);
        let claimer = tokio::spawn(self.clone().claim_ahead(ahead, stop.clone()));
        let slots = Arc::new(Semaphore::new(concurrency));
        let mut running = JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            let next = async {
                let slot = slots.clone().acquire_owned().await.ok()?;
                Some((slot, claimed.recv().await?))
            };
            let (slot, (delivery, at)) = tokio::select! {
                changed = stop.changed() => {
                    // A stop sender gone is a stop too (else this would spin).
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
                next = next => match next {
                    Some(next) => next,
                    None => break, // The claimer stopped.
                },
            };
            if !self.lease_covers_an_attempt(at) {
                continue;
            }
            let (worker, outcomes) = (self.clone(), outcomes.clone());
            running.spawn(async move {
                worker.process(delivery, &outcomes).await;
                drop(slot);
            });
        }
        // The claimer ends at `stop` (or has ended), after the claim it may be making:
        // no lease is taken after `shut_down` hands every lease of this worker back,
        // those of the deliveries claimed but not started included.
        let _ = claimer.await;
        drop(claimed);
        self.shut_down(running, outcomes, recorder).await;
    }

    /// Claims due deliveries into `ahead` whenever it has room, until `stop`.
    async fn claim_ahead(
        self,
        ahead: mpsc::Sender<(Claimed, Instant)>,
        mut stop: watch::Receiver<bool>,
    ) {
        let concurrency = self.config.concurrency.max(1);
        // With a backlog, claim when a quarter of the room is free rather than one by
        // one: one query for several deliveries, which is what lets many workers share
        // one database. Without a backlog, any room claims at once.
        let batch = (concurrency / 4).max(1);
        let mut backlog = false;
        while !*stop.borrow() {
            let want = if backlog { batch } else { 1 };
            let permits = tokio::select! {
                _ = stop.changed() => break,
                permits = ahead.reserve_many(want) => match permits {
                    Ok(permits) => permits,
                    Err(_) => break,
                },
            };
            let room = want + ahead.capacity();
            let mut claimed = self.claim(room).await.into_iter();
            backlog = claimed.len() == room;
            let found_nothing = claimed.len() == 0;
            let at = Instant::now();
            for (permit, delivery) in permits.zip(claimed.by_ref()) {
                permit.send((delivery, at));
            }
            // Only this task sends: the room counted above is still there.
            for delivery in claimed {
                if ahead.try_send((delivery, at)).is_err() {
                    break;
                }
            }
            if backlog {
                continue; // More may be due right now.
            }
            let mut wait = self.idle_wait().await;
            if found_nothing {
                // Something is due, yet this claim found nothing: its lanes are being
                // claimed by another worker, or wait for a slot. Not again at once.
                wait = wait.max(RECLAIM_AFTER);
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                changed = stop.changed() => if changed.is_err() {
                    break;
                },
            }
        }
    }

    /// Whether a delivery claimed at `at` is still leased long enough for one attempt.
    /// One that waited too long is left alone: it is due again when its lease runs out,
    /// never attempted by two workers at once.
    fn lease_covers_an_attempt(&self, at: Instant) -> bool {
        let deadline = self.transport.settings().deadline;
        let covered = at.elapsed() + deadline < self.config.lease;
        if !covered {
            tracing::debug!(
                "a delivery claimed {:?} ago waits for its lease to run out",
                at.elapsed()
            );
        }
        covered
    }

    async fn claim(&self, limit: usize) -> Vec<Claimed> {
        let config = &self.config;
        match self
            .store
            .claim(Lease::new(&config.owner, now_ms(), config.lease), limit)
            .await
        {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::error!("claiming deliveries failed: {err}");
                Vec::new()
            }
        }
    }

    /// Until the next delivery is due, at most the poll interval.
    async fn idle_wait(&self) -> Duration {
        let poll = self.config.poll;
        match self.store.next_due().await {
            Ok(Some(due)) => {
                let left = due.saturating_sub(now_ms()).max(0) as u64;
                poll.min(Duration::from_millis(left))
            }
            Ok(None) => poll,
            Err(err) => {
                tracing::error!("reading the queue failed: {err}");
                poll
            }
        }
    }

    async fn shut_down(
        &self,
        mut running: JoinSet<()>,
        outcomes: mpsc::Sender<(Claimed, Finish)>,
        recorder: tokio::task::JoinHandle<()>,
    ) {
        let drained = tokio::time::timeout(self.config.grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "{} attempt(s) still running after the grace period: stopped; they stay due",
                running.len()
            );
            running.abort_all();
        }
        // Every outcome recorded before the leases are handed back: a lease handed back
        // first would make a delivered one due again.
        drop(outcomes);
        let _ = recorder.await;
        if let Err(err) = self.store.release(&self.config.owner).await {
            tracing::error!("handing back claims failed (they expire with their lease): {err}");
        }
    }

    /// One attempt of one claimed delivery, handed to the recorder.
    async fn process(&self, claimed: Claimed, outcomes: &mpsc::Sender<(Claimed, Finish)>) {
        let schedule = &self.config.schedule;
        let finish = match self.routes_of(&claimed).await {
            Ok(routes) => {
                let service = resolve(&claimed, routes.as_deref());
                // A fallback is sent whatever its service's own `events` say.
                let widened = match &service {
                    Ok(instance) if claimed.fallback_for.is_some() => {
                        Some(fallback::listening_to_all(instance))
                    }
                    _ => None,
                };
                let service = widened.as_ref().map_or(service, Ok);
                let mut finish = attempt(&claimed, service, &self.transport, schedule).await;
                finish.fallback = fallback::fallback_delivery(&claimed, routes.as_deref(), &finish);
                finish
            }
            Err(err) => {
                let service = Err((
                    None,
                    format!("reading the product's services failed: {err}"),
                ));
                attempt(&claimed, service, &self.transport, schedule).await
            }
        };
        self.count(&claimed.service, &finish);
        if outcomes.send((claimed, finish)).await.is_err() {
            tracing::error!("the outcome recorder has stopped; the lease will run out");
        }
    }

    /// The claimed delivery's product as the attempt must see it: as of the generation
    /// the claim read, or newer (`None`: the product is gone).
    async fn routes_of(&self, claimed: &Claimed) -> crate::store::Result<Option<Arc<Routes>>> {
        let Some(generation) = claimed.generation else {
            return Ok(None);
        };
        self.routes
            .at_least(self.store.as_ref(), &claimed.product, generation)
            .await
    }

    fn count(&self, service: &str, finish: &Finish) {
        let metrics = &self.metrics;
        for attempt in &finish.attempts {
            if attempt.target.is_some() {
                metrics.observe(service, Duration::from_millis(attempt.duration_ms));
            }
            match attempt.outcome {
                AttemptOutcome::Failed => metrics.count(Counter::Failed, service),
                AttemptOutcome::Local => metrics.count(Counter::Local, service),
                AttemptOutcome::Throttled => metrics.count(Counter::Throttled, service),
                _ => {}
            }
        }
        match finish.status {
            Status::Delivered => metrics.count(Counter::Delivered, service),
            Status::Failed => metrics.count(Counter::Retried, service),
            Status::Dead => metrics.count(Counter::Dead, service),
            _ => {}
        }
    }
}

impl Worker {
    /// Records the outcomes `finished` receives, every one waiting in one transaction,
    /// until every sender is gone; then tells products' alerts services what a batch
    /// disabled or gave up (in a task of its own: an alert is a delivery). Each batch
    /// wakes the claimer: its lanes have room again, and a retry it scheduled may be due
    /// before the claimer's wait ends.
    async fn record_outcomes(self, mut finished: mpsc::Receiver<(Claimed, Finish)>) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while finished.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            let (claims, outcomes): (Vec<Claimed>, Vec<(String, Finish)>) = batch
                .drain(..)
                .map(|(claimed, finish)| {
                    let id = claimed.id.clone();
                    (claimed, (id, finish))
                })
                .unzip();
            let disabled = self.record(&outcomes).await;
            self.wake.notify_one();
            self.alert_after(&claims, &outcomes, disabled);
        }
    }

    /// Records one batch; the targets it disabled. The attempts happened: it keeps
    /// trying for a while (the store may be busy).
    async fn record(&self, outcomes: &[(String, Finish)]) -> Vec<Disabled> {
        let (owner, rule) = (&self.config.owner, &self.config.disable_after);
        for wait in [0, 100, 1_000, 5_000].map(Duration::from_millis) {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            match self
                .store
                .finish_batch(owner, outcomes, now_ms(), rule)
                .await
            {
                Ok(disabled) => return disabled,
                Err(err) => {
                    tracing::error!("recording {} attempt(s) failed: {err}", outcomes.len())
                }
            }
        }
        Vec::new()
    }
}

/// The most finished attempts one transaction records.
const RECORD_BATCH: usize = 256;

/// The shortest wait after a claim that found nothing though something was due: what
/// keeps workers sharing one busy lane from claiming in a loop while one holds it.
const RECLAIM_AFTER: Duration = Duration::from_millis(2);

#[cfg(test)]
mod tests {
    use super::*;

    use lookout::Settings;

    use lookout_testkit::{CaptureServer, Reply};

    use crate::attempt::tests::{schedule, transport};

    /// A worker on a fresh SQLite store: `deadline` for the engine, `lease` for claims.
    async fn worker_with(dir: &std::path::Path, deadline: Duration, lease: Duration) -> Worker {
        let store = crate::store::sqlite::SqliteStore::open(dir.join("lookout.db"))
            .await
            .unwrap();
        let settings = Settings {
            deadline,
            ..Settings::default()
        };
        Worker {
            store: Arc::new(store),
            routes: Arc::new(RouteCache::new(settings.clone())),
            transport: Transport::new(settings).unwrap(),
            config: Arc::new(WorkerConfig {
                lease,
                ..WorkerConfig::default()
            }),
            metrics: Arc::new(Metrics::new()),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The claimer sleeps until the next delivery is due, as read before an attempt
    /// failed; the retry that failure schedules must not wait for the (here 30 s) poll.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_due_soon_is_made_without_waiting_for_the_poll() {
        let server = CaptureServer::start();
        server.script("/flaky", [Reply::status(503), Reply::ok()]);
        let dir = tempfile::tempdir().unwrap();
        let mut worker =
            worker_with(dir.path(), Duration::from_secs(3), Duration::from_secs(30)).await;
        worker.transport = transport();
        worker.config = Arc::new(WorkerConfig {
            poll: Duration::from_secs(30),
            schedule: schedule("100ms"),
            ..(*worker.config).clone()
        });
        let hook = crate::echo::instance("hook", format!("{}/flaky", server.url()));
        worker.store.put_product("p1", &[hook]).await.unwrap();
        crate::echo::accept(worker.store.as_ref(), "evt_1").await;

        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(worker.clone().run(stopped));
        let started = Instant::now();
        while server.requests_to("/flaky").len() < 2 && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tries = server.requests_to("/flaky").len();
        let _ = stop.send(true);
        running.await.unwrap();
        assert_eq!(tries, 2, "the retry was not made within 10 s");
    }

    #[tokio::test]
    async fn a_delivery_claimed_ahead_starts_only_while_its_lease_covers_an_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let (deadline, lease) = (Duration::from_secs(10), Duration::from_secs(30));
        let worker = worker_with(dir.path(), deadline, lease).await;
        let ago = |secs| {
            Instant::now()
                .checked_sub(Duration::from_secs(secs))
                .unwrap()
        };
        assert!(worker.lease_covers_an_attempt(Instant::now()));
        assert!(worker.lease_covers_an_attempt(ago(19)));
        assert!(!worker.lease_covers_an_attempt(ago(21)));
    }

    #[tokio::test]
    async fn workers_whose_lease_an_attempt_could_outlive_do_not_start() {
        let dir = tempfile::tempdir().unwrap();
        let worker =
            worker_with(dir.path(), Duration::from_secs(60), Duration::from_secs(50)).await;
        let settings = Settings {
            deadline: Duration::from_secs(60),
            ..Settings::default()
        };
        let config = (*worker.config).clone();
        let refused =
            crate::http::run_workers(worker.store.clone(), settings, config, None, async {})
                .await
                .unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            refused
                .to_string()
                .contains("lease 50s must be longer than the engine deadline (1m)"),
            "{refused}"
        );
    }
}
