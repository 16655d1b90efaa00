//! One attempt of a claimed delivery: the configured service it is for as its product
//! is now ([`resolve`]), one send through the service's own `send` with a one-try
//! transport ([`attempt`]), and what to record of it: each target's health, the next
//! try on the retry schedule, or the end (delivered, disabled, dead). The loop that
//! claims and records is [`worker`](crate::worker).

use std::sync::Arc;
use std::time::Duration;

use crate::policy::RetrySchedule;
use crate::routing::Routes;
use crate::store::upkeep::TargetResult;
use crate::store::{
    AttemptOutcome, AttemptRecord, Claimed, DisabledTarget, Finish, Millis, Status, millis, now_ms,
};
use lookout::config::Instance;
use lookout::delivery::retry::Retry;
use lookout::delivery::{Attempt, Delivery, Outcome, Transport};
use lookout::dispatch::{Traced, run_attempt};

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
            step: self.claimed.step,
            done_targets: self.claimed.done_targets.clone(),
            ..Finish::to(status)
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
pub(crate) mod tests {
    use super::*;
    use lookout::Outgoing;
    use lookout::Settings;
    use lookout::request::HttpRequest;
    use lookout_testkit::{CaptureServer, Reply};
    use serde_json::{Map, Value, json};

    use crate::store::{Product, StoredInstance};

    use crate::echo::PAYLOAD;

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
            claimed: Claimed::for_tests("msg_stable", "hook"),
            options: json!({ "urls": urls }).as_object().cloned(),
        }
    }

    pub(crate) fn transport() -> Transport {
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

    pub(crate) fn schedule(delays: &str) -> RetrySchedule {
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
