//! `lookout serve`: the HTTP intake in front of the outbox, and the workers behind it.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/products/{id}/events` | accept an event for a product (202 + event id) |
//! | `POST /v1/events` | the same; the product is `?product=ID`, else the payload's `product.id` |
//! | `GET/PUT/DELETE /v1/products/{id}`, `GET /v1/products` | a product's services |
//! | `GET /v1/services` | the catalogue |
//! | `GET /v1/deliveries`, `GET /v1/deliveries/{id}` | deliveries (`?status=&service=&product=&limit=`), one with its attempts |
//! | `POST /v1/deliveries/{id}/redeliver` | make a delivery due again now |
//! | `GET /healthz`, `GET /metrics` | liveness (checks the store), Prometheus text |
//!
//! Every `/v1` route needs `Authorization: Bearer <token>`. An event is answered 202 only
//! once it and its deliveries are committed: from then on it is the workers' job.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;
use crate::policy::WorkerConfig;
use crate::store::{self, DeliveryFilter, NewDelivery, NewEvent, Store, now_ms};
use crate::worker::Worker;
use lookout::config::check_name;
use lookout::delivery::Transport;
use lookout::dispatch::new_delivery_id;
use lookout::payload::{Event, PayloadError};
use lookout::settings::Settings;

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The bearer token every `/v1` request must carry.
    pub token: String,
    /// Larger request bodies are refused with 413.
    pub max_body: usize,
    /// The engine settings (timeouts, deadline) the workers send with.
    pub settings: Settings,
    pub worker: WorkerConfig,
    /// Whether this process also runs workers (false: intake only).
    pub workers: bool,
}

impl ServeConfig {
    pub fn new(token: impl Into<String>) -> Self {
        ServeConfig {
            token: token.into(),
            max_body: 1024 * 1024,
            settings: Settings::default(),
            worker: WorkerConfig::default(),
            workers: true,
        }
    }
}

#[derive(Clone)]
struct App {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    /// SHA-256 of the token: comparing digests keeps the comparison constant-time
    /// whatever the lengths.
    token_digest: [u8; 32],
}

/// The HTTP routes; bodies above `max_body` bytes are refused with 413.
fn router(app: App, max_body: usize) -> Router {
    let v1 = Router::new()
        .route("/v1/events", post(post_event))
        .route("/v1/products/{id}/events", post(post_product_event))
        .route("/v1/products", get(list_products))
        .route(
            "/v1/products/{id}",
            get(get_product).put(put_product).delete(delete_product),
        )
        .route("/v1/services", get(services))
        .route("/v1/deliveries", get(list_deliveries))
        .route("/v1/deliveries/{id}", get(get_delivery))
        .route("/v1/deliveries/{id}/redeliver", post(redeliver))
        .route_layer(middleware::from_fn_with_state(app.clone(), authorize));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(v1)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

/// Runs the intake on `listener` and the workers until `shutdown` completes; then stops
/// accepting, lets requests and attempts in flight finish (attempts within the grace
/// period), and leaves everything else due in the store.
pub async fn run(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let transport = Transport::new(config.settings.clone()).map_err(std::io::Error::other)?;
    let app = App {
        store: store.clone(),
        metrics: Arc::new(Metrics::new()),
        wake: Arc::new(Notify::new()),
        token_digest: Sha256::digest(config.token.as_bytes()).into(),
    };
    let (stop, stopped) = watch::channel(false);
    let workers = config.workers.then(|| {
        let worker = Worker {
            store,
            transport,
            config: Arc::new(config.worker.clone()),
            metrics: app.metrics.clone(),
            wake: app.wake.clone(),
        };
        tokio::spawn(worker.run(stopped.clone()))
    });
    let mut on_stop = stopped.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new requests; finishing attempts in flight");
        let _ = stop.send(true);
    });
    let served = axum::serve(listener, router(app, config.max_body))
        .with_graceful_shutdown(async move {
            let _ = on_stop.wait_for(|stop| *stop).await;
        })
        .await;
    if let Some(workers) = workers {
        let _ = workers.await;
    }
    served
}

/// Runs workers only, no HTTP intake, until `shutdown` completes (`lookout worker`: the
/// events come from other processes through a shared database, so nothing wakes these
/// workers but their poll). Then lets attempts in flight finish within the grace period
/// and hands the rest back.
pub async fn run_workers(
    store: Arc<dyn Store>,
    settings: Settings,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let worker = Worker {
        store,
        transport: Transport::new(settings).map_err(std::io::Error::other)?,
        config: Arc::new(config),
        metrics: Arc::new(Metrics::new()),
        wake: Arc::new(Notify::new()),
    };
    let (stop, stopped) = watch::channel(false);
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

/// A JSON error body: `{"error": "…"}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

async fn authorize(State(app): State<App>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|token| Sha256::digest(token.trim().as_bytes()));
    let allowed = given.is_some_and(|digest| bool::from(digest.ct_eq(&app.token_digest)));
    if !allowed {
        let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        return response;
    }
    next.run(request).await
}

async fn healthz(State(app): State<App>) -> Response {
    match app.store.next_due().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(err) => {
            tracing::error!("health check: {err}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is not answering",
            )
        }
    }
}

async fn metrics(State(app): State<App>) -> Response {
    let depth = match app.store.stats().await {
        Ok(stats) => stats.queue_depth,
        Err(err) => {
            tracing::error!("metrics: {err}");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is not answering",
            );
        }
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(depth),
    )
        .into_response()
}

async fn services() -> Response {
    let all: Vec<_> = lookout::catalogue().iter().map(|r| r.summary()).collect();
    axum::Json(all).into_response()
}

#[derive(Deserialize)]
struct EventQuery {
    product: Option<String>,
}

async fn post_event(
    State(app): State<App>,
    Query(query): Query<EventQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    intake(&app, query.product, &headers, body).await
}

async fn post_product_event(
    State(app): State<App>,
    Path(product): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    intake(&app, Some(product), &headers, body).await
}

/// Parses, routes and stores one event; 202 only after the commit.
async fn intake(
    app: &App,
    product: Option<String>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let text = match payload_text(headers, &body) {
        Ok(text) => text,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let event = match Event::parse(&text) {
        Ok(event) => event,
        Err(err) => return payload_error(&err),
    };
    let product = product.unwrap_or_else(|| event.product.id.to_string());
    if let Err(problem) = check_name(&product) {
        return error(StatusCode::BAD_REQUEST, format!("product: {problem}"));
    }
    let configured = match app.store.product(&product).await {
        Ok(Some(configured)) => configured,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown product `{product}`"),
            );
        }
        Err(err) => return store_error(&err),
    };
    let deliveries: Vec<NewDelivery> = configured
        .instances
        .iter()
        .filter(|instance| {
            // A service this build does not know still gets its delivery: the worker
            // reports why it cannot be sent, where an operator will see it.
            lookout::service::find(&instance.service).is_none_or(|r| r.listens_to(&event))
        })
        .map(|instance| NewDelivery {
            id: new_delivery_id(),
            instance: instance.name.clone(),
            service: instance.service.clone(),
        })
        .collect();
    let accepted = NewEvent {
        id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        product,
        payload: text,
        received_at: now_ms(),
        deliveries,
    };
    if let Err(err) = app.store.accept(&accepted).await {
        return store_error(&err);
    }
    app.metrics.accepted();
    app.wake.notify_one();
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "id": accepted.id, "deliveries": accepted.deliveries })),
    )
        .into_response()
}

/// The payload: the JSON body, or the `payload` field of a form body.
fn payload_text(headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // `curl -d` labels JSON as a form: a body that is plainly JSON is taken as such.
    let looks_like_json = body.trim_ascii_start().starts_with(b"{");
    if content_type.starts_with("application/x-www-form-urlencoded") && !looks_like_json {
        return form_urlencoded::parse(body)
            .find(|(name, _)| name == "payload")
            .map(|(_, value)| value.into_owned())
            .ok_or_else(|| "the form has no `payload` field".to_owned());
    }
    String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8 text".to_owned())
}

fn payload_error(err: &PayloadError) -> Response {
    let mut body = json!({ "error": err.to_string() });
    if let PayloadError::Field { path, .. } = err {
        body["path"] = Value::from(path.clone());
    }
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn store_error(err: &store::StoreError) -> Response {
    tracing::error!("store: {err}");
    // 503: nothing was stored; the sender should try again.
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store is not answering; try again",
    )
}

async fn list_products(State(app): State<App>) -> Response {
    match app.store.products().await {
        Ok(products) => {
            let shown: Vec<Value> = products.iter().map(|p| p.to_redacted_json()).collect();
            axum::Json(shown).into_response()
        }
        Err(err) => store_error(&err),
    }
}

async fn get_product(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.store.product(&id).await {
        Ok(Some(product)) => axum::Json(product.to_redacted_json()).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("unknown product `{id}`")),
        Err(err) => store_error(&err),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductBody {
    services: Map<String, Value>,
}

/// Replaces a product's services: `{"services": {NAME: {"service": …, options…}}}`, the
/// shape of the config file's `[services]` tables.
async fn put_product(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(problem) = check_name(&id) {
        return error(StatusCode::BAD_REQUEST, format!("product: {problem}"));
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let parsed: ProductBody = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"services\": {{…}}}}: {err}"),
            );
        }
    };
    let instances = match store::instances_from_table(&parsed.services) {
        Ok(instances) => instances,
        Err(problems) => {
            let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
            let body = json!({ "error": shown.join("; "), "problems": shown });
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    if let Err(err) = app.store.put_product(&id, &instances).await {
        return store_error(&err);
    }
    get_product(State(app), Path(id)).await
}

async fn delete_product(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.store.remove_product(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("unknown product `{id}`")),
        Err(err) => store_error(&err),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    status: Option<String>,
    service: Option<String>,
    product: Option<String>,
    limit: Option<usize>,
}

/// `lookout deliveries list` over HTTP: newest first, at most `limit` (default 100).
async fn list_deliveries(State(app): State<App>, Query(query): Query<DeliveryQuery>) -> Response {
    let status = match query.status.as_deref().map(str::parse).transpose() {
        Ok(status) => status,
        Err(problem) => return error(StatusCode::BAD_REQUEST, format!("status: {problem}")),
    };
    let filter = DeliveryFilter {
        status,
        service: query.service,
        product: query.product,
        updated_since: None,
        limit: query.limit.unwrap_or(100),
    };
    match app.store.deliveries(&filter).await {
        Ok(rows) => axum::Json(rows).into_response(),
        Err(err) => store_error(&err),
    }
}

async fn get_delivery(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.store.delivery(&id).await {
        Ok(Some((delivery, attempts))) => {
            axum::Json(json!({ "delivery": delivery, "attempts": attempts })).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no delivery `{id}`")),
        Err(err) => store_error(&err),
    }
}

/// Makes a delivery due again now (as `lookout redeliver ID`) and wakes a worker.
async fn redeliver(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.store.redeliver(&id, now_ms()).await {
        Ok(true) => {
            app.wake.notify_one();
            get_delivery(State(app), Path(id)).await
        }
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no delivery `{id}`")),
        Err(err) => store_error(&err),
    }
}
