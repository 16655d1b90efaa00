//! Dispatch: one event to every enabled service, concurrently, each on its own clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use futures::future::join_all;
use serde::Serialize;
use tracing::Instrument as _;

use sha2::{Digest as _, Sha256};

use crate::config::{Config, Instance};
use crate::delivery::ratelimit::{RateLimit, Scope};
use crate::delivery::{Delivery, Outcome, Transport};
use crate::job::Job;
use crate::limits::build_within;
use crate::payload::Event;
use crate::request::RequestPreview;
use crate::settings::Settings;
use crate::telemetry;
use crate::text::budget::Cut;

/// The engine: settings, the shared transport, and (optionally) a set of enabled services.
#[derive(Clone)]
pub struct Engine {
    transport: Transport,
    instances: Arc<[Instance]>,
}

/// One row of a report: one request of one configured service (or why it sent none).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceResult {
    /// The config table's name.
    pub instance: String,
    pub service: &'static str,
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// What happened to one event.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `Model.action`.
    pub event: String,
    pub results: Vec<ServiceResult>,
}

impl Report {
    /// Whether any delivery failed (or found its target gone).
    pub fn has_failures(&self) -> bool {
        self.results.iter().any(|r| r.delivery.outcome.is_failure())
    }
}

/// What `--dry-run` shows for one configured service.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub instance: String,
    pub service: &'static str,
    pub requests: Vec<RequestPreview>,
    /// Set when the service would send nothing (skipped or failed, with why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_sent: Option<Outcome>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot start the HTTP client: {0}")]
pub struct EngineError(#[from] reqwest::Error);

impl Engine {
    /// An engine for the services and settings of a config.
    pub fn new(config: Config) -> Result<Engine, EngineError> {
        Ok(Engine {
            transport: Transport::new(config.engine)?,
            instances: config.services.into(),
        })
    }

    /// An engine with settings only; pass the services to [`Engine::dispatch_to`].
    pub fn with_settings(settings: Settings) -> Result<Engine, EngineError> {
        Engine::new(Config {
            engine: settings,
            services: Vec::new(),
        })
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    pub fn settings(&self) -> &Settings {
        self.transport.settings()
    }

    /// Sends `event` to every configured service.
    pub async fn dispatch(&self, event: &Event) -> Report {
        self.dispatch_to(event, &self.instances).await
    }

    /// Sends `event` to each of `instances` that listens to it, all at once, each through
    /// [`run_service`]: a slow, failing, paced or panicking service only affects its own
    /// rows. Rows come back in the order of `instances`.
    ///
    /// Several services each get a task of their own, so that one service's CPU work
    /// (a large template, a blocking bug) cannot hold up the others. A lone service has
    /// no one to hold up and runs in the caller's task: a task and a wake-up of another
    /// thread cost more than a whole delivery's own work (the bench's throughput figure).
    pub async fn dispatch_to(&self, event: &Event, instances: &[Instance]) -> Report {
        let results = match instances {
            [instance] => {
                let deliveries = run_attempt(
                    instance,
                    event,
                    new_delivery_id(),
                    &self.transport,
                    first(event),
                )
                .await;
                rows(instance, deliveries).collect()
            }
            _ => {
                let event = Arc::new(event.clone());
                let tasks = instances.iter().map(|instance| {
                    let (event, instance) = (event.clone(), instance.clone());
                    let transport = self.transport.clone();
                    tokio::spawn(async move {
                        let id = new_delivery_id();
                        let deliveries =
                            run_attempt(&instance, &event, id, &transport, first(&event)).await;
                        rows(&instance, deliveries).collect::<Vec<_>>()
                    })
                });
                let finished = join_all(tasks).await;
                finished
                    .into_iter()
                    .zip(instances)
                    .flat_map(|(task, instance)| match task {
                        Ok(rows) => rows,
                        // run_service catches the service's panics; only the runtime's
                        // shutdown cancels a task.
                        Err(_) => rows(
                            instance,
                            vec![Delivery::failed(None, "service task was cancelled")],
                        )
                        .collect(),
                    })
                    .collect()
            }
        };
        Report {
            event: event.kind(),
            results,
        }
    }

    /// What each configured service would send for `event`, secrets redacted.
    pub fn preview(&self, event: &Event) -> Vec<Preview> {
        preview(event, &self.instances)
    }
}

/// The report's rows of one configured service.
fn rows(instance: &Instance, deliveries: Vec<Delivery>) -> impl Iterator<Item = ServiceResult> {
    deliveries.into_iter().map(|delivery| ServiceResult {
        instance: instance.name.clone(),
        service: instance.service_name(),
        delivery,
    })
}

/// Sends `event` to one configured service, as every caller does (the library,
/// `lookout send` and `test`, the workers of `lookout serve`): through
/// [`Service::send`](crate::Service::send), in the caller's task, at the service's own
/// pace, under the deadline (its tries end before it; a send still running then is
/// dropped, which stops it). A service that does not listen to the event, panics, or
/// misses the deadline gets one row saying so.
pub async fn run_service(
    instance: &Instance,
    event: &Event,
    delivery_id: String,
    transport: &Transport,
) -> Vec<Delivery> {
    if !instance.listens_to(event) {
        let reason = format!("not listening to {}", event.kind());
        return vec![Delivery::skipped(reason)];
    }
    let deadline = transport.settings().deadline;
    let transport = transport
        .for_platform(instance.registration)
        .with_deadline(Instant::now() + deadline);
    let job = Job {
        event,
        options: &instance.options,
        delivery_id: &delivery_id,
        templates: &instance.templates,
        cut: Cut::NONE,
        sent_at: Some(std::time::SystemTime::now()),
    };
    let sending = AssertUnwindSafe(instance.registration.service.send(&job, &transport));
    finish(sending.catch_unwind(), deadline, instance).await
}

/// Which attempt of a delivery [`run_attempt`] makes, for its span.
#[derive(Debug, Clone, Copy)]
pub struct Traced<'a> {
    /// The product as its caller knows it (the server's product id); `None`: the
    /// payload's.
    pub product: Option<&'a str>,
    /// 1 for a delivery's first attempt.
    pub number: u32,
    /// The `traceparent` to continue (stored with the event by the intake), if any.
    pub parent: Option<&'a str>,
}

/// The only attempt of an in-process delivery, in whatever trace the caller is in.
fn first(_event: &Event) -> Traced<'static> {
    Traced {
        product: None,
        number: 1,
        parent: None,
    }
}

/// [`run_service`] as one attempt of a delivery, in a span of its own (see
/// [`telemetry`](crate::telemetry)): its requests carry that span's `traceparent`, and
/// the span records how the attempt went. Off, the span costs next to nothing.
pub async fn run_attempt(
    instance: &Instance,
    event: &Event,
    delivery_id: String,
    transport: &Transport,
    traced: Traced<'_>,
) -> Vec<Delivery> {
    let span = attempt_span(instance, event, traced);
    let deliveries = run_service(instance, event, delivery_id, transport)
        .instrument(span.clone())
        .await;
    let telling = telling_row(&deliveries);
    telemetry::record_attempt(
        &span,
        telling.map_or("skipped", |d| d.outcome.label()),
        telling.and_then(|d| d.outcome.status()),
        telling.and_then(|d| d.target.as_deref()),
    );
    deliveries
}

/// The span of one attempt (see [`telemetry`](crate::telemetry)), in the trace the
/// caller continues. Made apart from the attempt, whose future every delivery in flight
/// holds: the strings it is made from are gone before the first request is sent.
fn attempt_span(instance: &Instance, event: &Event, traced: Traced<'_>) -> tracing::Span {
    let payload_product = event.product.id.to_string();
    let span = telemetry::attempt_span(telemetry::AttemptOf {
        product: traced.product.unwrap_or(&payload_product),
        instance: &instance.name,
        service: instance.service_name(),
        event: &event.kind(),
        number: traced.number,
    });
    telemetry::continue_trace(&span, traced.parent);
    span
}

/// The row that says most about an attempt of several requests: the first failure,
/// else the first that was sent.
fn telling_row(deliveries: &[Delivery]) -> Option<&Delivery> {
    let failed = deliveries.iter().find(|d| d.outcome.is_failure());
    failed.or_else(|| {
        deliveries
            .iter()
            .find(|d| d.target.is_some())
            .or(deliveries.first())
    })
}

/// Waits for one service's send, at most `deadline`; a send still running then is
/// dropped, which stops it.
async fn finish(
    sending: impl Future<Output = std::thread::Result<Vec<Delivery>>>,
    deadline: Duration,
    instance: &Instance,
) -> Vec<Delivery> {
    match tokio::time::timeout(deadline, sending).await {
        Ok(Ok(deliveries)) => deliveries,
        Ok(Err(panic)) => {
            let message = panic_message(panic);
            let redactor = instance.options.redactor();
            vec![Delivery::failed(
                None,
                redactor.redact(&format!("service panicked: {message}")),
            )]
        }
        Err(_) => {
            let mut late = Delivery::failed(
                None,
                format!(
                    "deadline of {} exceeded",
                    crate::delivery::human_duration(deadline)
                ),
            );
            late.duration = deadline;
            vec![late]
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Where one configured service sends, counted the way its platform's pace counts
/// targets (see [`ratelimit`](crate::delivery::ratelimit)): what `lookout serve` queues
/// its deliveries by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// A hash of the targets' pace keys (a URL may hold a key; the hash does not show it).
    pub key: String,
    /// The pace its platform asks for; `None` without one, or with `rate_limits` off.
    pub pace: Option<RateLimit>,
}

/// The destination of `instance`: what it builds for the first sample event it builds
/// requests for (nothing is sent). `None` when no sample gives a request.
pub fn destination(instance: &Instance, settings: &Settings) -> Option<Destination> {
    let pace = instance
        .registration
        .rate_limit
        .filter(|_| settings.rate_limits);
    let scope = pace.map_or(Scope::Url, |pace| pace.scope);
    crate::samples::ALL.iter().find_map(|(_, json)| {
        let event = Event::parse(json).ok()?;
        let job = instance.job(&event, "msg_destination");
        let outgoing = instance.registration.service.build(&job).ok()?;
        let mut keys: Vec<String> = outgoing
            .iter()
            .filter_map(|o| o.pace_url().ok())
            .map(|url| scope.key(&url))
            .collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return None;
        }
        let digest = Sha256::digest(keys.join("\n"));
        let key = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Some(Destination { key, pace })
    })
}

/// A fresh delivery id, `msg_` + a time-ordered UUID, as Standard Webhooks suggests.
pub fn new_delivery_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// What each of `instances` would send for `event`, secrets redacted. Needs no engine:
/// nothing is sent, so no HTTP client is built (`--dry-run` stays quick).
pub fn preview(event: &Event, instances: &[Instance]) -> Vec<Preview> {
    instances.iter().map(|i| preview_one(event, i)).collect()
}

/// What one configured service would send for `event` (the snapshot tests use this too).
pub fn preview_one(event: &Event, instance: &Instance) -> Preview {
    preview_with_id(event, instance, "msg_preview")
}

/// [`preview_one`] with a given delivery id.
pub fn preview_with_id(event: &Event, instance: &Instance, delivery_id: &str) -> Preview {
    let redactor = instance.options.redactor();
    let mut preview = Preview {
        instance: instance.name.clone(),
        service: instance.service_name(),
        requests: Vec::new(),
        not_sent: None,
    };
    if !instance.listens_to(event) {
        preview.not_sent = Some(Outcome::Skipped {
            reason: format!("not listening to {}", event.kind()),
        });
        return preview;
    }
    let job = Job {
        event,
        options: &instance.options,
        delivery_id,
        templates: &instance.templates,
        cut: Cut::NONE,
        sent_at: None,
    };
    let service = instance.registration.service;
    match build_within(&instance.registration.limits, &job, |job| {
        service.build(job)
    }) {
        Ok(outgoing) => {
            preview.requests = outgoing.iter().map(|o| o.preview(redactor)).collect();
        }
        Err(err) => preview.not_sent = Some(Delivery::not_sent(err, redactor).outcome),
    }
    preview
}
