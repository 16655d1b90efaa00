//! Start-up and shut-down: the routes, `serve` (the intake and its workers) and
//! `lookout worker` (workers only).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{delete, get, post};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use super::admin::{
    create_token, delete_product, enable_target, get_delivery, get_product, list_deliveries,
    list_products, list_tokens, put_product, redeliver, revoke_token, services,
};
use super::answer::error;
use super::app::App;
use super::auth::{authorize, require_admin};
use super::config::ServeConfig;
use super::events::{post_batch, post_event, post_product_event};
use super::openapi::{asyncapi_document, openapi_document};
use super::operations::{healthz, metrics, render_health, render_metrics};
use crate::api;
use crate::commit::Committer;
use crate::console::{self, Console, Previews};
use crate::guessing::Guesses;
use crate::listen;
use crate::metrics::Metrics;
use crate::policy::WorkerConfig;
use crate::retention;
use crate::routing::RouteCache;
use crate::store::Store;
use crate::worker::Worker;
use lookout::delivery::Transport;
use lookout::delivery::ssrf::Guard;
use lookout::settings::Settings;

/// The HTTP routes; bodies above `max_body` bytes are refused with 413.
fn router(app: App, console: Console, max_body: usize) -> Router {
    let v1 = Router::new()
        .route("/v1/products", get(list_products))
        .route(
            "/v1/products/{id}",
            get(get_product).put(put_product).delete(delete_product),
        )
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route("/v1/deliveries", get(list_deliveries))
        .route("/v1/deliveries/{id}", get(get_delivery))
        .route("/v1/deliveries/{id}/redeliver", post(redeliver))
        .route(
            "/v1/products/{id}/services/{name}/enable",
            post(enable_target),
        )
        .route_layer(middleware::from_fn(require_admin))
        .route("/v1/events", post(post_event))
        .route("/v1/events/batch", post(post_batch))
        .route("/v1/products/{id}/events", post(post_product_event))
        .route("/v1/services", get(services))
        .route_layer(middleware::from_fn_with_state(app.clone(), authorize));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        // The contracts hold no secrets: open, like the health check.
        .route("/v1/openapi.json", get(openapi_document))
        .route("/v1/asyncapi.json", get(asyncapi_document))
        .merge(v1)
        .nest_service("/ui", console::router(console))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .layer(middleware::from_fn(api::json_errors))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

/// Runs the intake on `listener` and the workers until `shutdown` completes; then stops
/// accepting, lets requests and attempts in flight finish within their grace periods
/// (then closes what is still open), and leaves everything else due in the store.
pub async fn run(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if config.workers {
        check_lease(&config.worker, &config.settings)?;
    }
    let transport = Transport::new(config.settings.clone()).map_err(std::io::Error::other)?;
    let metrics = Arc::new(Metrics::new());
    let app = App {
        guesses: Arc::new(Guesses::new(metrics.clone())),
        store: store.clone(),
        committer: Committer::start(store.clone(), metrics.clone()),
        routes: Arc::new(RouteCache::new(config.settings.clone())),
        idempotency: Arc::new(config.idempotency.clone()),
        metrics,
        wake: Arc::new(Notify::new()),
        token_digest: Sha256::digest(config.token.as_bytes()).into(),
        guard: Guard::for_settings(&config.settings),
    };
    let (stop, stopped) = watch::channel(false);
    let workers = config.workers.then(|| {
        let worker = Worker {
            store,
            routes: app.routes.clone(),
            transport,
            config: Arc::new(config.worker.clone()),
            metrics: app.metrics.clone(),
            wake: app.wake.clone(),
        };
        let pruning = retention::run(worker.store.clone(), worker.config.clone(), stopped.clone());
        tokio::spawn(pruning);
        tokio::spawn(worker.run(stopped.clone()))
    });
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new requests; finishing attempts in flight");
        let _ = stop.send(true);
    });
    let console = Console {
        store: app.store.clone(),
        wake: app.wake.clone(),
        guard: app.guard.clone(),
        transport: Transport::new(config.settings.clone()).map_err(std::io::Error::other)?,
        routes: app.routes.clone(),
        keys: console::Keys::from_admin_token(&config.token),
        previews: Arc::new(Previews::new(config.previews.clone(), app.metrics.clone())),
        guesses: app.guesses.clone(),
        max_link_ttl: config.max_link_ttl,
    };
    let metrics = app.metrics.clone();
    let router = router(app, console, config.max_body);
    let served = listen::serve(listener, router, config.limits, metrics, stopped).await;
    if let Some(workers) = workers {
        let _ = workers.await;
    }
    served
}

/// Runs workers only, no HTTP intake, until `shutdown` completes (`lookout worker`: the
/// events come from other processes through a shared database, whose notifications
/// wake these workers: PostgreSQL's `LISTEN`, with the poll as a fallback). Then lets
/// attempts in flight finish within the grace period and hands the rest back. With
/// `metrics`, serves `GET /metrics` there (nothing else, no token: bind it where only
/// the scraper reaches).
pub async fn run_workers(
    store: Arc<dyn Store>,
    settings: Settings,
    config: WorkerConfig,
    metrics: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    check_lease(&config, &settings)?;
    let worker = Worker {
        store,
        routes: Arc::new(RouteCache::new(settings.clone())),
        transport: Transport::new(settings).map_err(std::io::Error::other)?,
        config: Arc::new(config),
        metrics: Arc::new(Metrics::new()),
        wake: Arc::new(Notify::new()),
    };
    let (stop, stopped) = watch::channel(false);
    let pruning = retention::run(worker.store.clone(), worker.config.clone(), stopped.clone());
    tokio::spawn(pruning);
    if let Some(listener) = metrics {
        let (store, metrics) = (worker.store.clone(), worker.metrics.clone());
        let checked = worker.store.clone();
        let router = Router::new()
            .route(
                "/metrics",
                get(move || async move { render_metrics(store.as_ref(), &metrics).await }),
            )
            // What a supervisor probes (a Kubernetes liveness probe): the store commits.
            .route(
                "/healthz",
                get(move || async move { render_health(checked.as_ref()).await }),
            );
        let mut stopping = stopped.clone();
        tokio::spawn(async move {
            let stop = async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            if let Err(err) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!("serving /metrics failed: {err}");
            }
        });
    }
    let running = tokio::spawn(worker.run(stopped));
    shutdown.await;
    tracing::info!("shutting down: finishing attempts in flight");
    let _ = stop.send(true);
    running.await.map_err(std::io::Error::other)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Workers whose lease does not outlast an attempt are refused before they start.
fn check_lease(config: &WorkerConfig, settings: &Settings) -> std::io::Result<()> {
    crate::policy::check_lease(config.lease, settings.deadline)
        .map_err(|problem| std::io::Error::new(std::io::ErrorKind::InvalidInput, problem))
}
