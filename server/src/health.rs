//! Target health and alerts, after each recorded attempt.
//!
//! Every request's result counts towards its target's health (store/upkeep.rs): a target
//! that failed every attempt for `[worker] disable_after` is disabled, as one that
//! answered "gone" is at once. When a target is disabled or a delivery goes dead, the
//! product's `alerts` service (any configured service of the product) is sent an
//! [`Alert`](lookout::payload::Alert) event through the engine like any other event: at
//! most one per target per hour, never about the alerts service itself, and an alert
//! that fails is logged, not retried or alerted about. Each is counted in `/metrics`
//! and logged.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::routing::Routes;
use crate::store::upkeep::AlertSlot;
use crate::store::{Claimed, Disabled, Finish, Generation, Product, Status, now_ms};
use crate::worker::Worker;
use lookout::delivery::Outcome;
use lookout::dispatch::run_service;
use lookout::payload::{ALERT_MODEL, Event};

/// At most one alert per target in this time.
pub const ALERT_EVERY: Duration = Duration::from_secs(3600);

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// A target was disabled: nothing is sent to it until it is enabled again.
    Disabled,
    /// A delivery went dead: it is not tried again unless redelivered.
    Dead,
}

impl AlertKind {
    /// The alert event's action, and the `kind` label of `lookout_alerts_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Disabled => "disabled",
            AlertKind::Dead => "dead",
        }
    }
}

/// One thing to tell a product's alerts service.
#[derive(Debug, Clone)]
pub struct Alert {
    pub kind: AlertKind,
    pub product: String,
    /// The product's generation the attempt saw (`None`: the product is gone).
    pub generation: Option<Generation>,
    pub instance: String,
    /// The target's key: what the once-an-hour limit counts by.
    pub key: String,
    /// Where it went, redacted.
    pub target: String,
    pub reason: String,
    pub delivery: String,
}

impl Alert {
    /// What alerts like it are limited by.
    pub fn slot(&self) -> AlertSlot<'_> {
        AlertSlot {
            product: &self.product,
            instance: &self.instance,
            key: &self.key,
            every: ALERT_EVERY,
        }
    }

    /// The event the alerts service is sent (the `Alert` model of the payload).
    pub fn event(&self) -> Event {
        let title = match self.kind {
            AlertKind::Disabled => format!(
                "Lookout disabled a target of `{}` in product {}",
                self.instance, self.product
            ),
            AlertKind::Dead => format!(
                "A delivery of `{}` in product {} went dead",
                self.instance, self.product
            ),
        };
        let next = match self.kind {
            AlertKind::Disabled => format!(
                "Nothing is sent to it until it is enabled again: `lookout products \
                 enable-target {} {} --redeliver`.",
                self.product, self.instance
            ),
            AlertKind::Dead => format!(
                "It is not tried again unless redelivered: `lookout redeliver {}`.",
                self.delivery
            ),
        };
        let body = format!("{} — {}. {next}", self.target, self.reason);
        let payload = json!({
            "model": ALERT_MODEL,
            "action": self.kind.as_str(),
            "product": {"id": 0, "name": self.product},
            "attributes": {
                "title": title,
                "body": body,
                "instance": self.instance,
                "target": self.target,
                "delivery": self.delivery,
            },
        });
        Event::from_value(payload).expect("the alert payload is well formed")
    }
}

/// Why a product's alerts service cannot be named.
pub fn check_alerts(product: &Product, alerts: &str) -> Result<(), String> {
    if product.instances.iter().any(|i| i.name == alerts) {
        return Ok(());
    }
    let known: Vec<&str> = product.instances.iter().map(|i| i.name.as_str()).collect();
    Err(format!(
        "alerts: product {} has no service `{alerts}` (it has: {})",
        product.id,
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    ))
}

/// What a recorded batch of attempts has to tell products' alerts services: the targets
/// that answered "gone" or failed for too long, and the deliveries that went dead.
pub fn alerts_of(
    claims: &[Claimed],
    outcomes: &[(String, Finish)],
    disabled: Vec<Disabled>,
) -> Vec<Alert> {
    let batch: Vec<(&Claimed, &Finish)> =
        claims.iter().zip(outcomes.iter().map(|(_, f)| f)).collect();
    let about = |claimed: &Claimed, kind, key: &str, target: &str, reason: &str| Alert {
        kind,
        product: claimed.product.clone(),
        generation: claimed.generation,
        instance: claimed.instance.clone(),
        key: key.to_owned(),
        target: target.to_owned(),
        reason: reason.to_owned(),
        delivery: claimed.id.clone(),
    };
    let mut alerts = Vec::new();
    for (claimed, finish) in &batch {
        for gone in &finish.disable {
            let (key, target, reason) = (&gone.key, &gone.target, &gone.reason);
            alerts.push(about(claimed, AlertKind::Disabled, key, target, reason));
        }
    }
    for failing in disabled {
        let Some((claimed, _)) = batch.iter().find(|(c, _)| c.id == failing.delivery) else {
            continue;
        };
        let target = &failing.target;
        let alert = about(
            claimed,
            AlertKind::Disabled,
            &target.key,
            &target.target,
            &target.reason,
        );
        alerts.push(alert);
    }
    for (claimed, finish) in batch.iter().filter(|(_, f)| f.status == Status::Dead) {
        let failed = finish.health.iter().find(|t| t.failure.is_some());
        let (key, target) = failed.map_or(("", ""), |t| (t.key.as_str(), t.target.as_str()));
        let reason = finish.last_error.as_deref().unwrap_or("given up");
        alerts.push(about(claimed, AlertKind::Dead, key, target, reason));
    }
    alerts
}

impl Worker {
    /// After a batch of attempts is recorded: tells products' alerts services what it
    /// disabled or gave up ([`alerts_of`]), in a task of its own (an alert is a delivery).
    pub(crate) fn alert_after(
        &self,
        claims: &[Claimed],
        outcomes: &[(String, Finish)],
        disabled: Vec<Disabled>,
    ) {
        let alerts = alerts_of(claims, outcomes, disabled);
        if !alerts.is_empty() {
            tokio::spawn(self.clone().send_alerts(alerts));
        }
    }

    /// Tells each product's alerts service about its targets disabled and deliveries
    /// gone dead (logged and counted in `/metrics` either way).
    async fn send_alerts(self, alerts: Vec<Alert>) {
        for alert in alerts {
            match alert.kind {
                AlertKind::Disabled => {
                    self.metrics.target_disabled();
                    tracing::warn!(
                        product = %alert.product,
                        instance = %alert.instance,
                        "target {} disabled: {}",
                        alert.target,
                        alert.reason
                    );
                }
                AlertKind::Dead => tracing::warn!(
                    product = %alert.product,
                    instance = %alert.instance,
                    "delivery {} is dead: {}",
                    alert.delivery,
                    alert.reason
                ),
            }
            self.alert(alert).await;
        }
    }

    /// Sends one alert to the product's alerts service, if it has one and this target
    /// was not alerted about within the hour.
    async fn alert(&self, alert: Alert) {
        let routes = match alert.generation {
            Some(generation) => {
                let store = self.store.as_ref();
                self.routes
                    .at_least(store, &alert.product, generation)
                    .await
            }
            None => Ok(None),
        };
        let routes = match routes {
            Ok(Some(routes)) => routes,
            Ok(None) => return,
            Err(err) => return tracing::error!("reading product {}: {err}", alert.product),
        };
        let Some(alerts) = routes.alerts.as_deref() else {
            return;
        };
        if alerts == alert.instance {
            // Its own failures would be sent through itself, failing again.
            return tracing::warn!("not alerting `{alerts}` about itself");
        }
        let slot = self.store.take_alert_slot(alert.slot(), now_ms()).await;
        match slot {
            Ok(true) => {}
            Ok(false) => return, // Told within the hour.
            Err(err) => return tracing::error!("alert limit for {}: {err}", alert.product),
        }
        self.send_alert(&routes, alerts, &alert).await;
    }

    async fn send_alert(&self, routes: &Routes, alerts: &str, alert: &Alert) {
        let product = &routes.product;
        let Some(route) = routes.route(alerts) else {
            return tracing::warn!("product {product}: alerts service `{alerts}` is gone");
        };
        let Ok(instance) = &route.instance else {
            return tracing::warn!("product {product}: alerts service `{alerts}` is invalid");
        };
        let mut instance = instance.clone();
        // The product's own events filter says nothing about alerts.
        instance.events = Some(Arc::from([format!("{ALERT_MODEL}.*")]));
        let event = Arc::new(alert.event());
        let id = format!("alert_{}", uuid::Uuid::now_v7().simple());
        let sent = run_service(&instance, &event, id, &self.transport).await;
        self.metrics.alerted(alert.kind.as_str());
        let unsent = sent
            .iter()
            .filter(|d| !matches!(d.outcome, Outcome::Delivered { .. }));
        for delivery in unsent {
            tracing::error!(
                "alert to `{alerts}` of product {product} not delivered: {:?}",
                delivery.outcome
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::policy::{RetrySchedule, WorkerConfig};
    use crate::store::sqlite::SqliteStore;
    use crate::store::upkeep::{DisableRule, InstanceKey};
    use crate::store::{Store, StoredInstance};
    use lookout::Settings;
    use lookout::delivery::Transport;
    use lookout_testkit::{CaptureServer, Reply};
    use tokio::sync::{Notify, watch};

    use crate::echo::{accept, instance as echo};

    fn worker(store: Arc<dyn Store>) -> Worker {
        let settings = Settings {
            request_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(3),
            ..Settings::default()
        };
        let config = WorkerConfig {
            // One at a time: each failure is counted before the next attempt.
            concurrency: 1,
            schedule: RetrySchedule {
                delays: vec![Duration::from_millis(20); 6],
                jitter: 0.0,
            },
            poll: Duration::from_millis(20),
            disable_after: DisableRule {
                failures: 3,
                over: Duration::ZERO,
            },
            ..WorkerConfig::default()
        };
        let settings = settings.allowing_loopback();
        Worker {
            store,
            routes: Arc::new(crate::routing::RouteCache::new(settings.clone())),
            transport: Transport::new(settings).unwrap(),
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Runs the worker until no delivery is queued (at most 10 s).
    async fn drain(worker: &Worker) {
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(worker.clone().run(stopped));
        let store = worker.store.clone();
        let done = tokio::time::timeout(Duration::from_secs(10), async move {
            while store.stats().await.unwrap().queue_depth > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let _ = stop.send(true);
        running.await.unwrap();
        assert!(done.is_ok(), "deliveries still queued after 10 s");
    }

    /// A worker on a fresh SQLite store (in the folder returned with it) that has
    /// drained three events of product `p1`, configured with `instances` and alerting
    /// `alerts`.
    async fn drained(instances: &[StoredInstance], alerts: &str) -> (tempfile::TempDir, Worker) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("db")).await.unwrap());
        store.put_product("p1", instances).await.unwrap();
        store.set_alerts("p1", Some(alerts)).await.unwrap();
        for id in ["e1", "e2", "e3"] {
            accept(store.as_ref(), id).await;
        }
        let worker = worker(store);
        drain(&worker).await;
        (dir, worker)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_target_is_disabled_and_alerts_arrive_once_an_hour() {
        let server = CaptureServer::start();
        server.script("/down", [Reply::status(503)]);
        let hook = echo("hook", format!("{}/down", server.url()));
        let ops = echo("ops", format!("{}/alerts", server.url()));
        let (_dir, worker) = drained(&[hook, ops], "ops").await;
        let store = worker.store.clone();

        // Three failures disable it; the worker records outcomes in batches behind its
        // attempts, so one more attempt may already be under way when the third is
        // recorded (its one slot free again), never more.
        let first_round = server.requests_to("/down").len();
        assert!(
            (3..=4).contains(&first_round),
            "{first_round} requests: none but one in flight after it was disabled"
        );
        let product = store.product("p1").await.unwrap().unwrap();
        assert_eq!(product.disabled.len(), 1);
        assert!(
            product.disabled[0]
                .reason
                .starts_with("failed 3 attempts in a row"),
            "{:?}",
            product.disabled[0]
        );
        let alerts = server.requests_to("/alerts");
        assert_eq!(alerts.len(), 1);
        let alert = alerts[0].json();
        assert_eq!(alert["model"], "Alert");
        assert_eq!(alert["action"], "disabled");
        assert_eq!(alert["attributes"]["instance"], "hook");
        let body = alert["attributes"]["body"].as_str().unwrap_or_default();
        assert!(body.contains("enable-target p1 hook"), "{body}");
        assert!(!body.contains("/down"), "targets are redacted: {body}");

        // Enabled again with its deliveries: it fails on, is disabled again, and the
        // alert within the hour is not sent twice.
        let enabled = store
            .enable_targets(
                InstanceKey {
                    product: "p1",
                    instance: "hook",
                },
                Some(now_ms()),
            )
            .await
            .unwrap();
        assert_eq!((enabled.targets, enabled.redelivered), (1, 3));
        drain(&worker).await;
        let second_round = server.requests_to("/down").len() - first_round;
        assert!((3..=4).contains(&second_round), "{second_round} requests");
        assert_eq!(
            store.product("p1").await.unwrap().unwrap().disabled.len(),
            1
        );
        assert_eq!(server.requests_to("/alerts").len(), 1, "once an hour");
        let metrics = worker.metrics.render(0);
        assert!(
            metrics.contains("lookout_targets_disabled_total 2"),
            "{metrics}"
        );
        assert!(
            metrics.contains("lookout_alerts_total{kind=\"disabled\"} 1"),
            "{metrics}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_alerts_service_is_never_alerted_about_itself() {
        let server = CaptureServer::start();
        server.script("/down", [Reply::status(503)]);
        let hook = echo("hook", format!("{}/down", server.url()));
        let (_dir, worker) = drained(&[hook], "hook").await;
        // Three failures, and at most one attempt under way when the third is recorded
        // (see above): none of them an alert.
        let requests = server.requests_to("/down").len();
        assert!((3..=4).contains(&requests), "{requests} requests");
        let alerts = server
            .requests_to("/down")
            .iter()
            .filter(|r| r.json()["model"] == "Alert")
            .count();
        assert_eq!(alerts, 0, "no alert went through it");
        assert!(!worker.metrics.render(0).contains("lookout_alerts_total{"));
    }

    #[test]
    fn alerts_must_name_a_service_of_the_product() {
        let product = Product {
            id: "p1".to_owned(),
            instances: vec![echo("hook", "http://127.0.0.1:9/".to_owned())],
            disabled: Vec::new(),
            alerts: None,
            generation: 0,
        };
        assert!(check_alerts(&product, "hook").is_ok());
        let err = check_alerts(&product, "ops").unwrap_err();
        assert_eq!(
            err,
            "alerts: product p1 has no service `ops` (it has: hook)"
        );
    }
}
