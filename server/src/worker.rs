//! The delivery workers behind `lookout serve`: claim due deliveries from the store, make
//! one attempt each, record it, and schedule the next one.
//!
//! One attempt of a delivery sends the stored event with the product's *current* options
//! the way every caller does, through the service's own `send` (see
//! [`run_attempt`]), with a one-try transport
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

use crate::metrics::{Counter, Metrics};
use crate::policy::{RetrySchedule, WorkerConfig};
use crate::routing::{RouteCache, Routes};
use crate::store::upkeep::TargetResult;
use crate::store::{
    AttemptOutcome, AttemptRecord, Claimed, Disabled, DisabledTarget, Finish, Millis, Status,
    Store, millis, now_ms,
};
use lookout::config::Instance;
use lookout::delivery::retry::Retry;
use lookout::delivery::{Attempt, Delivery, Outcome, Transport};
use lookout::dispatch::{Traced, run_attempt};

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
            .claim(&config.owner, now_ms(), limit, config.lease)
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
                attempt(&claimed, service, &self.transport, schedule).await
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

/// How soon a delivery that failed only for local reasons is tried again.
const LOCAL_RETRY: Duration = Duration::from_secs(1);

/// How often a delivery may be asked to wait (`429`, `Retry-After`) before further
/// waits count as failures of the retry schedule: a destination that only ever says
/// "later" must not keep a delivery for ever.
const MOST_THROTTLES: u32 = 25;

/// The configured service a claimed delivery is for, as its product is now: `Err` with
/// the final status (`None`: failed, retry) and why not.
pub type Resolved<'a> = Result<&'a Instance, (Option<Status>, String)>;

/// What a claimed delivery is sent with, from its product's [`Routes`] (`None`: the
/// product is gone).
pub fn resolve<'a>(claimed: &Claimed, routes: Option<&'a Routes>) -> Resolved<'a> {
    let Some(route) = routes.and_then(|routes| routes.route(&claimed.instance)) else {
        let reason = format!("the product no longer has a service `{}`", claimed.instance);
        return Err((Some(Status::Dead), reason));
    };
    if !route.enabled {
        let reason = format!("`{}` is switched off", claimed.instance);
        return Err((Some(Status::Skipped), reason));
    }
    // Options that no longer validate can be fixed (`lookout products …`): retry.
    route
        .instance
        .as_ref()
        .map_err(|problems| (None, problems.clone()))
}

/// Makes one attempt of a claimed delivery and says what to record.
///
/// The service sends as it always does, through [`run_attempt`] (the deadline, panics,
/// why nothing was built), with a one-try transport that skips the targets already
/// answered and records each request's try; the [`Finish`] comes from that record.
pub async fn attempt(
    claimed: &Claimed,
    service: Resolved<'_>,
    transport: &Transport,
    schedule: &RetrySchedule,
) -> Finish {
    let ending = Ending {
        claimed,
        number: claimed.attempts + 1,
        at: now_ms(),
        schedule,
    };
    let instance = match service {
        Ok(instance) => instance,
        Err((Some(status), reason)) => return ending.without_sending(status, reason),
        Err((None, reason)) => return ending.failed_without_sending(reason),
    };
    let event = match crate::shaping::event_of(claimed) {
        Ok(event) => Arc::new(event),
        Err(err) => return ending.without_sending(Status::Dead, format!("stored payload: {err}")),
    };
    let answered = claimed
        .done_targets
        .iter()
        .chain(&claimed.disabled_targets)
        .cloned()
        .collect();
    let transport = transport.one_try(answered);
    // In the intake's trace: the attempt is the event's, however much later it is made.
    let traced = Traced {
        product: Some(&claimed.product),
        number: ending.number,
        parent: claimed.trace_context.as_deref(),
    };
    let id = claimed.id.clone();
    let reported = run_attempt(instance, &event, id, &transport, traced).await;
    ending.after(&reported, &transport.attempts())
}

/// How one target fared in an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fared {
    Answered,
    Failed,
    /// This machine ran short.
    Local,
    /// Asked to wait (`429`, `Retry-After`).
    Throttled,
    Gone,
    Skipped,
}

impl Fared {
    fn of(delivery: &Delivery) -> Fared {
        match &delivery.outcome {
            Outcome::Delivered { .. } => Fared::Answered,
            Outcome::Skipped { .. } => Fared::Skipped,
            Outcome::Disabled { .. } => Fared::Gone,
            Outcome::Failed { .. } if delivery.retry == Retry::Local => Fared::Local,
            Outcome::Failed { .. } if delivery.retry.after().is_some() => Fared::Throttled,
            Outcome::Failed { .. } => Fared::Failed,
        }
    }

    fn outcome(self) -> AttemptOutcome {
        match self {
            Fared::Answered => AttemptOutcome::Delivered,
            Fared::Failed => AttemptOutcome::Failed,
            Fared::Local => AttemptOutcome::Local,
            Fared::Throttled => AttemptOutcome::Throttled,
            Fared::Gone => AttemptOutcome::Disabled,
            Fared::Skipped => AttemptOutcome::Skipped,
        }
    }

    fn is_failure(self) -> bool {
        matches!(self, Fared::Failed | Fared::Local | Fared::Throttled)
    }
}

/// How each target that was sent to fared, for its health: a failure of this machine,
/// a wait asked for or a message refused as too large (`413`) says nothing against the
/// target, and a "gone" answer disables
/// it anyway.
fn health(rows: &[(Option<&str>, &Delivery)]) -> Vec<TargetResult> {
    rows.iter()
        .filter_map(|&(key, delivery)| {
            let failure = match (Fared::of(delivery), &delivery.outcome) {
                (Fared::Answered | Fared::Throttled, _) => None,
                // The target works: it refused this one message as too large.
                (
                    _,
                    Outcome::Failed {
                        status: Some(413), ..
                    },
                ) => None,
                (Fared::Failed, Outcome::Failed { reason, .. }) => Some(reason.clone()),
                _ => return None,
            };
            Some(TargetResult {
                key: key?.to_owned(),
                target: delivery.target.clone().unwrap_or_default(),
                failure,
            })
        })
        .collect()
}

/// Turns what happened in one attempt into a [`Finish`].
struct Ending<'a> {
    claimed: &'a Claimed,
    number: u32,
    at: Millis,
    schedule: &'a RetrySchedule,
}

impl Ending<'_> {
    fn record(&self, outcome: AttemptOutcome, error: Option<String>) -> AttemptRecord {
        AttemptRecord {
            number: self.number,
            at: self.at,
            duration_ms: 0,
            target: None,
            outcome,
            status: None,
            error,
        }
    }

    /// A finish that keeps the delivery as it was, to be filled in.
    fn finish(&self, status: Status) -> Finish {
        Finish {
            status,
            next_at: None,
            step: self.claimed.step,
            done_targets: self.claimed.done_targets.clone(),
            last_error: None,
            attempts: Vec::new(),
            disable: Vec::new(),
            health: Vec::new(),
            latency_ms: None,
            hold_until: None,
            throttled: false,
        }
    }

    /// A final state reached without sending anything.
    fn without_sending(&self, status: Status, reason: String) -> Finish {
        let outcome = if status == Status::Skipped {
            AttemptOutcome::Skipped
        } else {
            AttemptOutcome::Failed
        };
        Finish {
            last_error: (status != Status::Skipped).then(|| reason.clone()),
            attempts: vec![self.record(outcome, Some(reason))],
            ..self.finish(status)
        }
    }

    fn failed_without_sending(&self, reason: String) -> Finish {
        let mut finish = self.without_sending(Status::Failed, reason);
        self.reschedule(&mut finish, None);
        finish
    }

    /// Schedules the next attempt, or dead-letters when the schedule is used up.
    fn reschedule(&self, finish: &mut Finish, retry_after: Option<Duration>) {
        let failures = self.claimed.step + 1;
        finish.step = failures;
        match self.schedule.next_delay(failures, retry_after) {
            Some(delay) => {
                finish.status = Status::Failed;
                finish.next_at = Some(now_ms().saturating_add(millis(delay)));
            }
            None => {
                finish.status = Status::Dead;
                finish.next_at = None;
            }
        }
    }

    /// What the service reported and what its transport sent. Rows without a target
    /// were never sent (nothing to say about the event, a payload or options it could not
    /// use, a panic, the deadline); rows of targets that answered earlier are neither.
    fn after(&self, reported: &[Delivery], sent: &[Attempt]) -> Finish {
        if reported.is_empty() && sent.is_empty() {
            let reason = "the service built no request".to_owned();
            return self.without_sending(Status::Skipped, reason);
        }
        let unsent: Vec<&Delivery> = reported.iter().filter(|d| d.target.is_none()).collect();
        if let [
            Delivery {
                outcome: Outcome::Skipped { reason },
                ..
            },
        ] = unsent[..]
            && sent.is_empty()
        {
            return self.without_sending(Status::Skipped, reason.clone());
        }
        let rows = sent
            .iter()
            .map(|a| (Some(a.key.as_str()), &a.delivery))
            .chain(unsent.into_iter().map(|d| (None, d)));
        self.after_sending(rows.collect(), sent.is_empty())
    }

    /// `rows`: each target's try (with its key), and the failures that sent nothing.
    fn after_sending(&self, rows: Vec<(Option<&str>, &Delivery)>, none_sent: bool) -> Finish {
        let mut finish = Finish {
            health: health(&rows),
            latency_ms: rows
                .iter()
                .filter(|(key, _)| key.is_some())
                .map(|(_, d)| d.duration.as_millis() as u64)
                .max(),
            ..self.finish(Status::Delivered)
        };
        // The longest wait any target asked for (Retry-After) bounds the next attempt,
        // and holds its destination until then.
        let asked = rows.iter().filter_map(|(_, d)| d.retry.after()).max();
        finish.hold_until = asked.map(|wait| self.at.saturating_add(millis(wait)));
        for &(key, delivery) in &rows {
            let fared = Fared::of(delivery);
            let (status, error) = match &delivery.outcome {
                Outcome::Delivered { status } => {
                    finish.done_targets.extend(key.map(str::to_owned));
                    (Some(*status), None)
                }
                Outcome::Skipped { reason } => (None, Some(reason.clone())),
                Outcome::Failed { reason, status } => {
                    finish.last_error = Some(reason.clone());
                    (*status, Some(reason.clone()))
                }
                Outcome::Disabled { reason, status } => {
                    finish.disable.extend(key.map(|key| DisabledTarget {
                        instance: self.claimed.instance.clone(),
                        key: key.to_owned(),
                        target: delivery.target.clone().unwrap_or_default(),
                        reason: reason.clone(),
                        at: self.at,
                    }));
                    (Some(*status), Some(reason.clone()))
                }
            };
            finish.attempts.push(AttemptRecord {
                duration_ms: delivery.duration.as_millis() as u64,
                target: delivery.target.clone(),
                status,
                error,
                ..self.record(fared.outcome(), None)
            });
        }
        let failures: Vec<(Fared, &Delivery)> = rows
            .iter()
            .map(|(_, d)| (Fared::of(d), *d))
            .filter(|(fared, _)| fared.is_failure())
            .collect();
        let only = |kind: Fared| !failures.is_empty() && failures.iter().all(|(f, _)| *f == kind);
        // A failure no retry can fix (a 4xx other than 408, 425 or 429: the target
        // refused the request itself; a payload that lacks something) is dead at once,
        // as the retry policy says; an operator can redeliver it after fixing the options.
        let hopeless = failures.iter().all(|(_, d)| !d.retry.is_retryable());
        if only(Fared::Local) {
            // This machine ran short, not the target: soon again, on the same step.
            tracing::warn!(
                "delivery {}: failed for want of local resources; again in {}s",
                self.claimed.id,
                LOCAL_RETRY.as_secs()
            );
            finish.status = Status::Failed;
            finish.next_at = Some(now_ms().saturating_add(millis(LOCAL_RETRY)));
        } else if only(Fared::Throttled) && self.claimed.throttles < MOST_THROTTLES {
            // Asked to wait, not refused: again when the destination said, on the same
            // step of the schedule.
            finish.status = Status::Failed;
            finish.next_at = finish.hold_until;
            finish.throttled = true;
        } else if !failures.is_empty() && hopeless {
            finish.status = Status::Dead;
        } else if !failures.is_empty() {
            self.reschedule(&mut finish, asked);
        } else if finish.done_targets.is_empty() && !finish.disable.is_empty() {
            finish.status = Status::Disabled;
            finish.last_error = finish.disable.last().map(|d| d.reason.clone());
        } else if none_sent && finish.done_targets.is_empty() {
            // Every target was disabled earlier.
            finish.status = Status::Disabled;
            finish.attempts.push(self.record(
                AttemptOutcome::Disabled,
                Some("every target of this service is disabled (410 Gone)".to_owned()),
            ));
        }
        finish
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout::Outgoing;
    use lookout::Settings;
    use lookout::request::HttpRequest;
    use lookout_testkit::{CaptureServer, Reply};
    use serde_json::{Map, Value, json};

    use crate::store::{Product, StoredInstance};

    use crate::echo::PAYLOAD;

    /// A claimed delivery, with its service's options as stored now (`None`: removed).
    struct Stored {
        claimed: Claimed,
        options: Option<Map<String, Value>>,
    }

    impl Stored {
        /// One attempt, its service resolved as the worker resolves it.
        async fn attempt(&self, schedule: &RetrySchedule) -> Finish {
            let instances = self.options.clone().map(|options| StoredInstance {
                name: self.claimed.instance.clone(),
                service: self.claimed.service.clone(),
                options,
            });
            let product = Product {
                id: self.claimed.product.clone(),
                instances: instances.into_iter().collect(),
                disabled: Vec::new(),
                alerts: None,
                generation: 1,
            };
            let routes = Routes::of(&product, transport().settings());
            let service = resolve(&self.claimed, Some(&routes));
            attempt(&self.claimed, service, &transport(), schedule).await
        }
    }

    impl std::ops::Deref for Stored {
        type Target = Claimed;
        fn deref(&self) -> &Claimed {
            &self.claimed
        }
    }

    impl std::ops::DerefMut for Stored {
        fn deref_mut(&mut self) -> &mut Claimed {
            &mut self.claimed
        }
    }

    fn claimed(urls: &[String]) -> Stored {
        Stored {
            claimed: Claimed {
                id: "msg_stable".to_owned(),
                event_id: "evt_1".to_owned(),
                product: "p1".to_owned(),
                instance: "hook".to_owned(),
                service: "echo".to_owned(),
                payload: PAYLOAD.to_owned(),
                attempts: 0,
                step: 0,
                done_targets: Vec::new(),
                generation: Some(1),
                disabled_targets: Vec::new(),
                lane: "lane".to_owned(),
                throttles: 0,
                trace_context: None,
                digest: None,
            },
            options: json!({ "urls": urls }).as_object().cloned(),
        }
    }

    fn transport() -> Transport {
        Transport::new(
            Settings {
                request_timeout: Duration::from_secs(2),
                deadline: Duration::from_secs(3),
                ..Settings::default()
            }
            .allowing_loopback(),
        )
        .unwrap()
    }

    fn schedule(delays: &str) -> RetrySchedule {
        RetrySchedule {
            jitter: 0.0,
            ..delays.parse().unwrap()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_targets_left_are_sent_again() {
        let server = CaptureServer::start();
        server.script("/b", [Reply::status(500), Reply::ok()]);
        let urls = [format!("{}/a", server.url()), format!("{}/b", server.url())];
        let mut delivery = claimed(&urls);

        let first = delivery.attempt(&schedule("1s")).await;
        assert_eq!(first.status, Status::Failed);
        assert_eq!(first.step, 1);
        assert_eq!(first.done_targets.len(), 1, "/a got it");
        assert_eq!(first.attempts.len(), 2);
        assert!(first.next_at.unwrap() >= now_ms() + 900);
        assert!(
            !format!("{first:?}").contains("/b"),
            "targets are redacted: {first:?}"
        );

        delivery.attempts = 1;
        delivery.step = first.step;
        delivery.done_targets = first.done_targets.clone();
        let second = delivery.attempt(&schedule("1s")).await;
        assert_eq!(second.status, Status::Delivered);
        assert_eq!(second.attempts.len(), 1, "only /b was sent again");
        assert_eq!(second.attempts[0].number, 2);
        assert_eq!(second.done_targets.len(), 2);

        let requests = server.requests();
        let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(sorted, ["/a", "/b", "/b"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gone_targets_are_disabled_and_schedules_end_in_dead_letters() {
        let server = CaptureServer::start();
        server.script("/gone", [Reply::status(410)]);
        server.script("/down", [Reply::status(503)]);
        let gone = claimed(&[format!("{}/gone", server.url())])
            .attempt(&schedule("1s"))
            .await;
        assert_eq!(gone.status, Status::Disabled);
        assert_eq!(gone.disable.len(), 1);

        let mut down = claimed(&[format!("{}/down", server.url())]);
        down.step = 1; // one failure already: the one-delay schedule is used up
        let dead = down.attempt(&schedule("1s")).await;
        assert_eq!(dead.status, Status::Dead);
        assert_eq!(dead.attempts[0].status, Some(503));

        // A later event for the same product: the gone target is skipped.
        let mut again = claimed(&[format!("{}/gone", server.url())]);
        again.disabled_targets = vec![gone.disable[0].key.clone()];
        let skipped = again.attempt(&schedule("1s")).await;
        assert_eq!(skipped.status, Status::Disabled);
        assert_eq!(server.requests_to("/gone").len(), 1);
    }

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
            crate::intake::run_workers(worker.store.clone(), settings, config, None, async {})
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

    #[tokio::test]
    async fn what_cannot_be_sent() {
        let mut removed = claimed(&[]);
        removed.options = None;
        assert_eq!(removed.attempt(&schedule("1s")).await.status, Status::Dead);

        let mut invalid = claimed(&[]); // `urls` is required: fixable, so retried
        invalid.options = Some(Map::new());
        assert_eq!(
            invalid.attempt(&schedule("1s")).await.status,
            Status::Failed
        );

        let none = claimed(&[]).attempt(&schedule("1s")).await;
        assert_eq!(none.status, Status::Skipped, "no request built: {none:?}");

        let mut nothing = claimed(&["http://127.0.0.1:9/".to_owned()]);
        nothing.payload = PAYLOAD.replace("Item", "Nothing");
        let skipped = nothing.attempt(&schedule("1s")).await;
        assert_eq!(skipped.status, Status::Skipped);
        assert_eq!(skipped.attempts[0].outcome, AttemptOutcome::Skipped);
    }

    #[tokio::test]
    async fn the_services_own_send_is_what_runs() {
        let mut delivery = claimed(&[]);
        delivery.service = "panics".to_owned();
        delivery.options = Some(Map::new());
        let finish = delivery.attempt(&schedule("1s")).await;
        assert_eq!(finish.status, Status::Failed, "{finish:?}");
        assert!(finish.next_at.is_some(), "rescheduled");
        let error = finish.last_error.unwrap_or_default();
        assert!(error.contains("service panicked: boom"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_attempt_carries_the_stored_delivery_id() {
        let server = CaptureServer::start();
        server.script("/signed", [Reply::status(500), Reply::ok()]);
        let mut delivery = claimed(&[format!("{}/signed", server.url())]);
        delivery.options = json!({
            "urls": [format!("{}/signed", server.url())],
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        })
        .as_object()
        .cloned();
        let first = delivery.attempt(&schedule("1s")).await;
        assert_eq!(first.status, Status::Failed);
        delivery.step = 1;
        let second = delivery.attempt(&schedule("1s")).await;
        assert_eq!(second.status, Status::Delivered);
        let ids: Vec<String> = server
            .requests()
            .iter()
            .map(|r| r.header("webhook-id").unwrap_or_default().to_owned())
            .collect();
        assert_eq!(ids, ["msg_stable", "msg_stable"]);
        let key = Outgoing::from(HttpRequest::post(
            format!("{}/signed", server.url()).parse().unwrap(),
        ))
        .target_key();
        assert_eq!(second.done_targets, [key]);
    }
}
