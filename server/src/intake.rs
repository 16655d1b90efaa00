//! `lookout serve`: the HTTP intake in front of the outbox, and the workers behind it.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/products/{id}/events` | accept an event for a product (202 + event id) |
//! | `POST /v1/events` | the same; the product is `?product=ID`, else the payload's `product.id` |
//! | `POST /v1/events/batch` | up to [`MAX_BATCH_EVENTS`] events (a JSON array, or NDJSON), one result each |
//! | `GET/PUT/DELETE /v1/products/{id}`, `GET /v1/products` | a product's services |
//! | `GET /v1/services` | the catalogue |
//! | `GET/POST /v1/tokens`, `DELETE /v1/tokens/{id}` | API tokens ([`tokens`]) |
//! | `GET /v1/deliveries`, `GET /v1/deliveries/{id}` | deliveries (`?status=&service=&product=&limit=`, `limit` at most 10,000), one with its attempts |
//! | `POST /v1/deliveries/{id}/redeliver` | make a delivery due again now |
//! | `GET /healthz`, `GET /metrics` | health (the store can commit), Prometheus text |
//! | `GET /v1/openapi.json`, `GET /v1/asyncapi.json` | the contracts ([`api`](crate::api)), no token |
//! | `/ui/…` | the web console ([`console`](crate::console)): its own sign-in and sessions |
//!
//! Every `/v1` route but the contracts needs `Authorization: Bearer <token>` (401 without a valid one):
//! events take an admin token or an ingest token naming the product; every other `/v1`
//! route takes an admin token (403 otherwise). An event is answered 202 only once it and
//! its deliveries are committed: from then on it is the workers' job. Events arriving
//! together share one commit ([`commit`](crate::commit)). An `Idempotency-Key` (or the
//! configured payload field, [`IdempotencyConfig`]) makes a repeated POST get the first
//! answer instead of a second event.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{Notify, watch};

use crate::api::{self, Accepted, ApiError, BatchAnswer, BatchResult, CommonAnswers, Verdict};
use crate::clients::ClientAddr;
use crate::commit::Committer;
use crate::console::{self, Console, PreviewLimits, Previews};
use crate::guessing::{self, Door, Guesses};
use crate::listen::{self, Limits};
use crate::metrics::Metrics;
use crate::policy::WorkerConfig;
use crate::retention;
use crate::routing::{RouteCache, Routes};
use crate::server_settings::ServerSettings;
use crate::store::{
    self, Admission, DeliveryFilter, IdempotencyKey, NewEvent, Store, millis, now_ms,
};
use crate::tokens::{self, Scope, Token};
use crate::worker::Worker;
use lookout::config::check_name;
use lookout::delivery::Transport;
use lookout::delivery::ssrf::Guard;
use lookout::payload::{Event, PayloadError};
use lookout::settings::Settings;
use lookout::telemetry;
use tracing::Instrument as _;

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
    /// Timeouts and caps on the intake's connections.
    pub limits: Limits,
    pub idempotency: IdempotencyConfig,
    /// The limits on the console's previews.
    pub previews: PreviewLimits,
    /// A portal link lasting longer than this is refused.
    pub max_link_ttl: Duration,
}

/// How repeated POSTs are recognised (docs/SERVING.md, "Idempotent intake").
#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    /// How long a key is remembered.
    pub ttl: Duration,
    /// A dotted path into the payload (`attributes.id`) whose value is the key of an
    /// event posted without an `Idempotency-Key` header (and of every event of a batch).
    pub field: Option<String>,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        IdempotencyConfig {
            ttl: Duration::from_secs(24 * 60 * 60),
            field: None,
        }
    }
}

impl ServeConfig {
    pub fn new(token: impl Into<String>) -> Self {
        ServeConfig {
            token: token.into(),
            max_body: 1024 * 1024,
            settings: Settings::default(),
            worker: WorkerConfig::default(),
            workers: true,
            limits: Limits::default(),
            idempotency: IdempotencyConfig::default(),
            previews: PreviewLimits::default(),
            max_link_ttl: console::MAX_LINK_TTL,
        }
    }

    /// These settings (their defaults, the workers' decided) with what `server` sets:
    /// the config file's `[server]` table with the flags over it.
    pub fn apply(&mut self, server: &ServerSettings) {
        if let Some(max) = server.max_body {
            self.max_body = max;
        }
        if let Some(workers) = server.workers {
            self.workers = workers;
        }
        if let Some(ttl) = server.idempotency_ttl {
            self.idempotency.ttl = ttl;
        }
        if let Some(field) = &server.idempotency_field {
            self.idempotency.field = Some(field.clone());
        }
        self.limits = server.limits(self.worker.grace);
        self.previews = server.previews();
        self.max_link_ttl = server.max_link_ttl();
    }
}

#[derive(Clone)]
pub(crate) struct App {
    store: Arc<dyn Store>,
    committer: Committer,
    routes: Arc<RouteCache>,
    idempotency: Arc<IdempotencyConfig>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    /// SHA-256 of the token: comparing digests keeps the comparison constant-time
    /// whatever the lengths.
    token_digest: [u8; 32],
    /// The workers' SSRF guard: targets it will refuse are refused when configured.
    guard: Guard,
    /// Wrong tokens per client address, shared with the console's sign-in.
    guesses: Arc<Guesses>,
}

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

/// A JSON error body: `{"error": "…"}` ([`ApiError`]).
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError::new(message).response(status)
}

/// Who is calling: the bootstrap token (`LOOKOUT_TOKEN`, admin) or a stored token that
/// has not expired. 401 for no token, an unknown one or an expired one; handlers read
/// the [`Token`] to say 403 to a token not allowed what it asks.
async fn authorize(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let Some(given) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return unauthorized("a bearer token is required");
    };
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0);
    if let Some(wait) = client.and_then(|client| app.guesses.wait_for(client)) {
        return too_many_wrong_tokens(wait);
    }
    let bootstrap = Sha256::digest(given.as_bytes()).ct_eq(&app.token_digest);
    let caller = if bool::from(bootstrap) {
        Token::bootstrap()
    } else {
        match app.store.token_by_digest(&tokens::digest(given)).await {
            Ok(Some(token)) if token.is_expired(now_ms()) => {
                return unauthorized("this token has expired");
            }
            Ok(Some(token)) => token,
            Ok(None) => {
                if let Some(client) = client {
                    app.guesses.failed(client, Door::Api);
                }
                return unauthorized("a valid bearer token is required");
            }
            Err(err) => return store_error(&err),
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// 429 for an address that has given too many wrong tokens lately.
fn too_many_wrong_tokens(wait: Duration) -> Response {
    let seconds = guessing::retry_after_seconds(wait);
    let message = format!("too many wrong tokens from this address: try again in {seconds} s");
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    response
}

fn unauthorized(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
    response
}

fn forbidden(message: impl Into<String>) -> Response {
    error(StatusCode::FORBIDDEN, message)
}

/// Products, tokens and everything but posting events: admin tokens only.
async fn require_admin(
    Extension(caller): Extension<Token>,
    request: Request,
    next: Next,
) -> Response {
    if caller.scope != Scope::Admin {
        return forbidden("this token may only post events (scope ingest); this needs admin");
    }
    next.run(request).await
}

/// How long `/healthz` waits for its write: a store that takes longer cannot take events.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// 200 only if the store can commit right now (a one-row write): a full disk, a
/// read-only or a locked store makes every event 503, and so says this.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, description = "The store can commit", body = String, content_type = "text/plain"),
        (status = 503, description = "The store cannot commit: events would be refused too", body = ApiError),
    )
)]
pub(crate) async fn healthz(State(app): State<App>) -> Response {
    render_health(app.store.as_ref()).await
}

/// `/healthz` of `serve` and of a worker's metrics listener (see [`healthz`]).
async fn render_health(store: &dyn Store) -> Response {
    let checked = tokio::time::timeout(HEALTH_TIMEOUT, store.check_writable(now_ms())).await;
    match checked.unwrap_or_else(|_| Err(store::StoreError::Backend("no commit in time".into()))) {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(err) => {
            tracing::error!("health check: {err}");
            error(StatusCode::SERVICE_UNAVAILABLE, "the store cannot commit")
        }
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
    )
)]
pub(crate) async fn metrics(State(app): State<App>) -> Response {
    render_metrics(app.store.as_ref(), &app.metrics).await
}

/// `/metrics`: the counters, and the queue depth read from the store.
async fn render_metrics(store: &dyn Store, metrics: &Metrics) -> Response {
    let depth = match store.stats().await {
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
        metrics.render(depth),
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/services", tag = "products", security(("bearer" = [])),
    responses(
        (status = 200, description = "The catalogue: every service, its events and options", body = Vec<lookout::service::ServiceSummary>),
    )
)]
pub(crate) async fn services() -> Response {
    let all: Vec<_> = lookout::catalogue().iter().map(|r| r.summary()).collect();
    axum::Json(all).into_response()
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object))
)]
pub(crate) async fn openapi_document() -> Response {
    let document = openapi_json();
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

#[utoipa::path(get, path = "/v1/asyncapi.json", tag = "operations",
    responses((status = 200, description = "What a webhook receiver gets (AsyncAPI 3)", body = Object))
)]
pub(crate) async fn asyncapi_document() -> Response {
    axum::Json(api::asyncapi()).into_response()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventQuery {
    /// The product, when the path does not name it (else the payload's `product.id`).
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    product: Option<String>,
}

/// A form body (what GitHub-style senders post): the payload's JSON in `payload`.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "only its schema is used: payload_text reads forms"
)]
pub(crate) struct EventForm {
    payload: String,
}

#[utoipa::path(post, path = "/v1/events", tag = "events", security(("bearer" = [])),
    params(EventQuery, ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeated POST get the first answer (1 to 255 characters)", min_length = 1, max_length = 255)),
    request_body(
        description = "The payload: JSON, or a form whose `payload` field holds the JSON",
        content(
            (lookout::payload::PayloadSchema = "application/json"),
            (EventForm = "application/x-www-form-urlencoded"),
        )
    ),
    responses(
        (status = 202, description = "Stored, with one delivery per enabled service that listens to it", body = Accepted),
        (status = 400, description = "The payload is not valid JSON, or a key is missing or of the wrong type (`path` names it)", body = ApiError),
        (status = 403, description = "An ingest token that does not name this product", body = ApiError),
        (status = 404, description = "No such product", body = ApiError),
        (status = 409, description = "The `Idempotency-Key` was already used with a different body", body = ApiError),
    )
)]
pub(crate) async fn post_event(
    State(app): State<App>,
    Extension(caller): Extension<Token>,
    Query(query): Query<EventQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let span = intake_span("/v1/events", &headers);
    traced(&span, intake(&app, &caller, query.product, &headers, body)).await
}

#[utoipa::path(post, path = "/v1/products/{id}/events", tag = "events", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product: 1 to 64 letters, digits, `-`, `_` or `.`", pattern = r"^[A-Za-z0-9._-]{1,64}$"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeated POST get the first answer (1 to 255 characters)", min_length = 1, max_length = 255)),
    request_body(
        description = "The payload: JSON, or a form whose `payload` field holds the JSON",
        content(
            (lookout::payload::PayloadSchema = "application/json"),
            (EventForm = "application/x-www-form-urlencoded"),
        )
    ),
    responses(
        (status = 202, description = "Stored, with one delivery per enabled service that listens to it", body = Accepted),
        (status = 400, description = "The payload is not valid JSON, or a key is missing or of the wrong type (`path` names it)", body = ApiError),
        (status = 403, description = "An ingest token that does not name this product", body = ApiError),
        (status = 404, description = "No such product", body = ApiError),
        (status = 409, description = "The `Idempotency-Key` was already used with a different body", body = ApiError),
    )
)]
pub(crate) async fn post_product_event(
    State(app): State<App>,
    Extension(caller): Extension<Token>,
    Path(product): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let span = intake_span("/v1/products/{id}/events", &headers);
    traced(&span, intake(&app, &caller, Some(product), &headers, body)).await
}

/// The span of one POST of events, in the caller's trace if its `traceparent` names one.
fn intake_span(route: &'static str, headers: &HeaderMap) -> tracing::Span {
    let span = telemetry::intake_span(route);
    let traceparent = headers
        .get(telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    telemetry::continue_trace(&span, traceparent);
    span
}

/// Runs `handling` in `span`, which then records the answer's status.
async fn traced(span: &tracing::Span, handling: impl Future<Output = Response>) -> Response {
    let response = handling.instrument(span.clone()).await;
    telemetry::record_status(span, response.status().as_u16());
    response
}

/// Parses, routes and stores one event; 202 only after the commit.
async fn intake(
    app: &App,
    caller: &Token,
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
    let key = match header_key(headers) {
        Ok(key) => key,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    admit(app, caller, product, text, key).await.into_response()
}

/// The most events one `POST /v1/events/batch` may carry (and the body must fit in
/// `--max-body`).
pub const MAX_BATCH_EVENTS: usize = 1_000;

/// Several events in one request: a JSON array, or NDJSON (one event per line) with
/// `Content-Type: application/x-ndjson`. Each event is taken or refused on its own,
/// exactly as if posted alone; the answer (200) lists each one's result in order.
#[utoipa::path(post, path = "/v1/events/batch", tag = "events", security(("bearer" = [])),
    params(EventQuery),
    request_body(
        description = "Up to 1,000 payloads (each a `Payload`): a JSON array, or NDJSON (one \
                       payload per line). Each is taken or refused on its own, as if posted \
                       alone: a bad one is a `400` in its result, not a refused batch.",
        content(
            (Vec<serde_json::Value> = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 200, description = "Each event's result, in order: taken or refused on its own", body = BatchAnswer),
        (status = 400, description = "Neither a JSON array nor NDJSON, an `Idempotency-Key` header, or a bad `product`", body = ApiError),
        (status = 413, description = "More than 1,000 events, or a body larger than `--max-body`", body = ApiError),
    )
)]
pub(crate) async fn post_batch(
    State(app): State<App>,
    Extension(caller): Extension<Token>,
    Query(query): Query<EventQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let span = intake_span("/v1/events/batch", &headers);
    traced(&span, batch(&app, &caller, query, &headers, body)).await
}

async fn batch(
    app: &App,
    caller: &Token,
    query: EventQuery,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    // A bad `?product=` is the request's fault, not each event's: refused as a whole.
    if let Some(Err(problem)) = query.product.as_deref().map(check_name) {
        return error(StatusCode::BAD_REQUEST, format!("product: {problem}"));
    }
    if headers.contains_key(IDEMPOTENCY_KEY) {
        let problem = "Idempotency-Key names one event: a batch's events take their keys \
                       from the configured idempotency field";
        return error(StatusCode::BAD_REQUEST, problem);
    }
    let texts = match batch_texts(headers, &body) {
        Ok(texts) => texts,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    if texts.len() > MAX_BATCH_EVENTS {
        let problem = format!(
            "{} events in one batch; at most {MAX_BATCH_EVENTS}",
            texts.len()
        );
        return error(StatusCode::PAYLOAD_TOO_LARGE, problem);
    }
    // Handed to the committer together: they share its next commits.
    let admitted = texts
        .into_iter()
        .map(|text| admit(app, caller, query.product.clone(), text, None));
    let answers = futures::future::join_all(admitted).await;
    let accepted = answers
        .iter()
        .filter(|a| a.status == StatusCode::ACCEPTED)
        .count();
    let results: Vec<BatchResult> = answers.into_iter().map(Answer::into_result).collect();
    let body = BatchAnswer {
        accepted,
        refused: results.len() - accepted,
        results,
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The events of a batch body, each as text.
fn batch_texts(headers: &HeaderMap, body: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8 text".to_owned())?;
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"));
    if ndjson {
        let lines = text.lines().filter(|line| !line.trim().is_empty());
        return Ok(lines.map(str::to_owned).collect());
    }
    let events: Vec<Value> = serde_json::from_str(text).map_err(|err| {
        format!(
            "expected a JSON array of events (or NDJSON with Content-Type: \
             application/x-ndjson): {err}"
        )
    })?;
    Ok(events.iter().map(Value::to_string).collect())
}

/// The header that makes a POST idempotent.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Keys longer than this are refused.
const MAX_KEY_LEN: usize = 255;

/// The `Idempotency-Key` header, if given and well-formed.
fn header_key(headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().map(str::trim).unwrap_or_default();
    // HTTP lets a header value hold tabs and spaces; a key is one visible word.
    let visible = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > MAX_KEY_LEN || !visible {
        return Err(format!(
            "Idempotency-Key: expected 1 to {MAX_KEY_LEN} visible ASCII characters"
        ));
    }
    Ok(Some(key.to_owned()))
}

/// The configured field's value in `text`, as a key (a string or a number).
fn field_key(field: &str, text: &str) -> Option<String> {
    let payload: Value = serde_json::from_str(text).ok()?;
    let found = field
        .split('.')
        .try_fold(&payload, |value, name| value.get(name))?;
    match found {
        Value::String(key) if !key.is_empty() && key.len() <= MAX_KEY_LEN => Some(key.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Times an event is routed again because its product's services changed under it
/// before its commit; past that the sender is asked to try again.
const ROUTING_TRIES: usize = 5;

/// Checks, routes and stores one event; the answer once it is durable.
async fn admit(
    app: &App,
    caller: &Token,
    product: Option<String>,
    text: String,
    key: Option<String>,
) -> Answer {
    let event = match Event::parse(&text) {
        Ok(event) => event,
        Err(err) => return payload_problem(&err),
    };
    let product = product.unwrap_or_else(|| event.product.id.to_string());
    if let Err(problem) = check_name(&product) {
        let problem = format!("product: {problem}");
        return Answer::problem(StatusCode::BAD_REQUEST, problem);
    }
    if !caller.may_post_to(&product) {
        let problem = format!("this token may not post events for `{product}`");
        return Answer::problem(StatusCode::FORBIDDEN, problem);
    }
    let key = key.or_else(|| {
        let field = app.idempotency.field.as_deref()?;
        field_key(field, &text)
    });
    for _ in 0..ROUTING_TRIES {
        let routes = match app.routes.routes(&*app.store, &product).await {
            Ok(Some(routes)) => routes,
            Ok(None) => {
                let problem = format!("unknown product `{product}`");
                return Answer::problem(StatusCode::NOT_FOUND, problem);
            }
            Err(err) => return Answer::unavailable(&err),
        };
        let routed = new_event(app, &product, &text, key.clone(), &routes, &event);
        match commit(app, routed).await {
            Some(answer) => return answer,
            None => app.routes.forget(&product, routes.generation),
        }
    }
    Answer::problem(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the services of `{product}` kept changing while this event was stored; try again"),
    )
}

/// The event to store, with a delivery for each of `routes` that listens to it.
fn new_event(
    app: &App,
    product: &str,
    text: &str,
    key: Option<String>,
    routes: &Routes,
    event: &Event,
) -> NewEvent {
    let received_at = now_ms();
    let id = format!("evt_{}", uuid::Uuid::now_v7().simple());
    let deliveries = routes.deliveries(event);
    let kind = event.kind();
    let span = tracing::Span::current();
    telemetry::record_intake(&span, product, &kind, &id, deliveries.len());
    let idempotency = key.map(|key| IdempotencyKey {
        digest: body_digest(product, text),
        since: received_at.saturating_sub(millis(app.idempotency.ttl)),
        key,
    });
    NewEvent {
        id,
        product: product.to_owned(),
        payload: text.to_owned(),
        received_at,
        deliveries,
        idempotency,
        routed_with: Some(routes.generation),
        trace_context: telemetry::traceparent(&tracing::Span::current()),
    }
}

/// What tells two bodies posted with one key apart.
fn body_digest(product: &str, payload: &str) -> String {
    let digest = Sha256::new()
        .chain_update(product.as_bytes())
        .chain_update([0])
        .chain_update(payload.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stores the event with whatever else is being posted (group commit); the answer once
/// it is durable, or `None` when it must be routed again (nothing was stored).
async fn commit(app: &App, event: NewEvent) -> Option<Answer> {
    let key = event.idempotency.as_ref().map(|k| k.key.clone());
    let accepted = Accepted {
        id: event.id.clone(),
        deliveries: event.deliveries.iter().map(Into::into).collect(),
    };
    Some(match app.committer.submit(event).await {
        Ok(Admission::Rerouted) => return None,
        Ok(Admission::Stored) => {
            app.metrics.accepted();
            app.wake.notify_one();
            Answer::accepted(accepted, false)
        }
        Ok(Admission::Repeated { answer }) => match serde_json::from_str(&answer) {
            Ok(first) => Answer::accepted(first, true),
            Err(err) => Answer::unavailable(&store::StoreError::Backend(format!(
                "a stored idempotent answer does not read back: {err}"
            ))),
        },
        Ok(Admission::Conflict) => Answer::problem(
            StatusCode::CONFLICT,
            format!(
                "Idempotency-Key `{}` was already used with a different body",
                key.unwrap_or_default()
            ),
        ),
        Err(err) => Answer::unavailable(&err),
    })
}

/// What the intake says about one event: alone, the response; in a batch, one result.
struct Answer {
    status: StatusCode,
    verdict: Verdict,
    /// The first answer again (a repeated idempotency key).
    replayed: bool,
}

impl Answer {
    fn accepted(accepted: Accepted, replayed: bool) -> Answer {
        Answer {
            status: StatusCode::ACCEPTED,
            verdict: Verdict::Accepted(accepted),
            replayed,
        }
    }

    fn problem(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer::refused(status, ApiError::new(message))
    }

    fn refused(status: StatusCode, error: ApiError) -> Answer {
        Answer {
            status,
            verdict: Verdict::Refused(error),
            replayed: false,
        }
    }

    /// 503: nothing was stored; the sender should try again.
    fn unavailable(err: &store::StoreError) -> Answer {
        tracing::error!("store: {err}");
        Answer::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not answering; try again",
        )
    }

    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.verdict)).into_response();
        if self.replayed {
            let replayed = header::HeaderValue::from_static("true");
            response
                .headers_mut()
                .insert("idempotent-replayed", replayed);
        }
        response
    }

    /// The body with the status (and `replayed`) in it.
    fn into_result(self) -> BatchResult {
        BatchResult {
            status: self.status.as_u16(),
            verdict: self.verdict,
            replayed: self.replayed,
        }
    }
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

fn payload_problem(err: &PayloadError) -> Answer {
    let mut error = ApiError::new(err.to_string());
    if let PayloadError::Field { path, .. } = err {
        error.path = Some(path.clone());
    }
    Answer::refused(StatusCode::BAD_REQUEST, error)
}

fn store_error(err: &store::StoreError) -> Response {
    Answer::unavailable(err).into_response()
}

#[utoipa::path(get, path = "/v1/products", tag = "products", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every product", body = Vec<store::ProductView>),
        (status = 403, description = "Not an admin token", body = ApiError),
    )
)]
pub(crate) async fn list_products(State(app): State<App>) -> Response {
    match app.store.products().await {
        Ok(products) => {
            let shown: Vec<_> = products.iter().map(store::Product::redacted).collect();
            axum::Json(shown).into_response()
        }
        Err(err) => store_error(&err),
    }
}

#[utoipa::path(get, path = "/v1/products/{id}", tag = "products", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product: 1 to 64 letters, digits, `-`, `_` or `.`", pattern = r"^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 200, description = "The product: its services, secrets redacted, and disabled targets", body = store::ProductView),
        (status = 400, description = "Not a valid product id", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 404, description = "No such product", body = ApiError),
    )
)]
pub(crate) async fn get_product(State(app): State<App>, Path(id): Path<String>) -> Response {
    if let Err(problem) = check_name(&id) {
        return error(StatusCode::BAD_REQUEST, format!("product: {problem}"));
    }
    match app.store.product(&id).await {
        Ok(Some(product)) => axum::Json(product.redacted()).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("unknown product `{id}`")),
        Err(err) => store_error(&err),
    }
}

/// A product's services in the shape of a config file's `[services]` tables.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProductBody {
    /// By name: `{"service": "webhook", options…}`.
    #[schema(value_type = Object)]
    services: Map<String, Value>,
    /// The service told about disabled targets and dead deliveries.
    #[serde(default)]
    alerts: Option<String>,
}

/// Replaces a product's services: `{"services": {NAME: {"service": …, options…}}}`, the
/// shape of the config file's `[services]` tables.
#[utoipa::path(put, path = "/v1/products/{id}", tag = "products", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product: 1 to 64 letters, digits, `-`, `_` or `.`", pattern = r"^[A-Za-z0-9._-]{1,64}$")),
    request_body(content = ProductBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced; the product as stored", body = store::ProductView),
        (status = 400, description = "Not a valid id or body, or invalid options (`problems` lists every one)", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
    )
)]
pub(crate) async fn put_product(
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
    let refused = |problems: Vec<lookout::options::OptionProblem>| {
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let mut error = ApiError::new(shown.join("; "));
        error.problems = Some(shown);
        error.response(StatusCode::BAD_REQUEST)
    };
    let instances = match store::instances_from_table(&parsed.services) {
        Ok(instances) => instances,
        Err(problems) => return refused(problems),
    };
    let blocked: Vec<_> = instances
        .iter()
        .filter_map(|stored| stored.instance().ok())
        .flat_map(|instance| lookout::config::refused_targets(&instance, &app.guard))
        .collect();
    if !blocked.is_empty() {
        return refused(blocked);
    }
    if let Some(alerts) = &parsed.alerts
        && instances.iter().all(|i| &i.name != alerts)
    {
        let problem = format!("alerts: no service `{alerts}` in this product");
        return error(StatusCode::BAD_REQUEST, problem);
    }
    if let Err(err) = app.store.put_product(&id, &instances).await {
        return store_error(&err);
    }
    if let Err(err) = app.store.set_alerts(&id, parsed.alerts.as_deref()).await {
        return store_error(&err);
    }
    get_product(State(app), Path(id)).await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnableBody {
    /// Also make the service's dead and disabled deliveries due again.
    #[serde(default)]
    redeliver: bool,
}

/// Enables every disabled target of one configured service again, and with
/// `{"redeliver": true}` sends its dead deliveries again, in one step.
#[utoipa::path(post, path = "/v1/products/{id}/services/{name}/enable", tag = "products", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product: 1 to 64 letters, digits, `-`, `_` or `.`", pattern = r"^[A-Za-z0-9._-]{1,64}$"), ("name" = String, Path, description = "The configured service")),
    request_body(content = Option<EnableBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Its targets are enabled again (and its dead deliveries due again)", body = store::upkeep::Enabled),
        (status = 400, description = "Not a valid body", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 404, description = "No such product or service", body = ApiError),
    )
)]
pub(crate) async fn enable_target(
    State(app): State<App>,
    Path((id, name)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    // The body is optional: none, or JSON `null` (as the contract allows), asks nothing.
    let asked: EnableBody = if body.is_empty() || body.trim_ascii() == b"null" {
        EnableBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(asked) => asked,
            Err(err) => {
                let problem = format!(r#"expected {{"redeliver": true|false}}: {err}"#);
                return error(StatusCode::BAD_REQUEST, problem);
            }
        }
    };
    match app.store.product(&id).await {
        Ok(Some(product)) if product.instances.iter().any(|i| i.name == name) => {}
        Ok(_) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no service `{name}` in product `{id}`"),
            );
        }
        Err(err) => return store_error(&err),
    }
    match app
        .store
        .enable_targets(&id, &name, asked.redeliver, now_ms())
        .await
    {
        Ok(enabled) => {
            app.wake.notify_one();
            axum::Json(enabled).into_response()
        }
        Err(err) => store_error(&err),
    }
}

#[utoipa::path(delete, path = "/v1/products/{id}", tag = "products", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product: 1 to 64 letters, digits, `-`, `_` or `.`", pattern = r"^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 204, description = "Removed; its events and deliveries stay as history"),
        (status = 400, description = "Not a valid product id", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 404, description = "No such product", body = ApiError),
    )
)]
pub(crate) async fn delete_product(State(app): State<App>, Path(id): Path<String>) -> Response {
    if let Err(problem) = check_name(&id) {
        return error(StatusCode::BAD_REQUEST, format!("product: {problem}"));
    }
    match app.store.remove_product(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("unknown product `{id}`")),
        Err(err) => store_error(&err),
    }
}

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every stored token (never the token itself)", body = Vec<tokens::Token>),
        (status = 403, description = "Not an admin token", body = ApiError),
    )
)]
pub(crate) async fn list_tokens(State(app): State<App>) -> Response {
    match app.store.tokens().await {
        Ok(tokens) => axum::Json(tokens).into_response(),
        Err(err) => store_error(&err),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    scope: Scope,
    /// For `ingest`: the products it may post events for (at least one); none for admin.
    #[serde(default)]
    products: Vec<String>,
    /// How long it is valid: `90d`, `12h` (default: until revoked).
    expires: Option<String>,
}

/// Creates a token; the answer is the only place its secret is ever shown.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body(content = TokenRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new token, shown this once", body = api::CreatedToken),
        (status = 400, description = "Not a valid request", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
    )
)]
pub(crate) async fn create_token(
    State(app): State<App>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let asked: TokenRequest = match serde_json::from_slice(&body) {
        Ok(asked) => asked,
        Err(err) => {
            let expected =
                r#"expected {"scope": "admin" | "ingest", "products": […], "expires": "90d"}"#;
            return error(StatusCode::BAD_REQUEST, format!("{expected}: {err}"));
        }
    };
    let expires_in = match asked.expires.as_deref().map(humantime::parse_duration) {
        Some(Err(err)) => return error(StatusCode::BAD_REQUEST, format!("expires: {err}")),
        Some(Ok(duration)) => Some(duration),
        None => None,
    };
    let (secret, new) = match tokens::create(asked.scope, asked.products, expires_in) {
        Ok(created) => created,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    if let Err(err) = app.store.put_token(&new).await {
        return store_error(&err);
    }
    let shown = api::CreatedToken {
        listed: new.token,
        token: secret,
    };
    (StatusCode::CREATED, axum::Json(shown)).into_response()
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 404, description = "No such token", body = ApiError),
    )
)]
pub(crate) async fn revoke_token(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.store.revoke_token(&id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such token"),
        Err(err) => store_error(&err),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveryQuery {
    #[param(value_type = Option<store::Status>)]
    status: Option<String>,
    service: Option<String>,
    product: Option<String>,
    /// At most this many (default 100, at most 10,000).
    #[param(minimum = 0, maximum = 10000)]
    limit: Option<usize>,
}

/// The most deliveries one `GET /v1/deliveries` lists: an answer stays a page, not the
/// whole table read into memory.
const MAX_DELIVERIES_LISTED: usize = 10_000;

/// `lookout deliveries list` over HTTP: newest first, at most `limit` (default 100).
#[utoipa::path(get, path = "/v1/deliveries", tag = "deliveries", security(("bearer" = [])),
    params(DeliveryQuery),
    responses(
        (status = 200, description = "Deliveries, most recently changed first", body = Vec<store::DeliveryRow>),
        (status = 400, description = "Not a valid query", body = ApiError),
        (status = 403, description = "Not an admin token", body = ApiError),
    )
)]
pub(crate) async fn list_deliveries(
    State(app): State<App>,
    Query(query): Query<DeliveryQuery>,
) -> Response {
    let status = match query.status.as_deref().map(str::parse).transpose() {
        Ok(status) => status,
        Err(problem) => return error(StatusCode::BAD_REQUEST, format!("status: {problem}")),
    };
    let limit = query.limit.unwrap_or(100);
    if limit > MAX_DELIVERIES_LISTED {
        let problem = format!("limit: at most {MAX_DELIVERIES_LISTED}");
        return error(StatusCode::BAD_REQUEST, problem);
    }
    let filter = DeliveryFilter {
        status,
        service: query.service,
        product: query.product,
        updated_since: None,
        limit,
        after: None,
    };
    match app.store.deliveries(&filter).await {
        Ok(rows) => axum::Json(rows).into_response(),
        Err(err) => store_error(&err),
    }
}

#[utoipa::path(get, path = "/v1/deliveries/{id}", tag = "deliveries", security(("bearer" = [])),
    params(("id" = String, Path, description = "The delivery (`msg_…`)")),
    responses(
        (status = 200, description = "The delivery, its attempts, and why it waits", body = api::DeliveryDetail),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 404, description = "No such delivery", body = ApiError),
    )
)]
pub(crate) async fn get_delivery(State(app): State<App>, Path(id): Path<String>) -> Response {
    let (found, waiting, replaces) = futures::join!(
        app.store.delivery(&id),
        app.store.waiting(&id, now_ms()),
        app.store.shaped_into(&id)
    );
    match (found, waiting, replaces) {
        (Ok(Some((delivery, attempts))), Ok(waiting), Ok(replaces)) => {
            let body = api::DeliveryDetail {
                delivery,
                attempts,
                waiting,
                replaces,
            };
            axum::Json(body).into_response()
        }
        (Ok(None), ..) => error(StatusCode::NOT_FOUND, format!("no delivery `{id}`")),
        (Err(err), ..) | (_, Err(err), _) | (.., Err(err)) => store_error(&err),
    }
}

/// Makes a delivery due again now (as `lookout redeliver ID`) and wakes a worker.
#[utoipa::path(post, path = "/v1/deliveries/{id}/redeliver", tag = "deliveries", security(("bearer" = [])),
    params(("id" = String, Path, description = "The delivery (`msg_…`)")),
    responses(
        (status = 200, description = "Due again now, with a fresh schedule", body = api::DeliveryDetail),
        (status = 403, description = "Not an admin token", body = ApiError),
        (status = 404, description = "No such delivery", body = ApiError),
    )
)]
pub(crate) async fn redeliver(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.store.redeliver(&id, now_ms()).await {
        Ok(true) => {
            app.wake.notify_one();
            get_delivery(State(app), Path(id)).await
        }
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no delivery `{id}`")),
        Err(err) => store_error(&err),
    }
}

/// Workers whose lease does not outlast an attempt are refused before they start.
fn check_lease(config: &WorkerConfig, settings: &Settings) -> std::io::Result<()> {
    crate::policy::check_lease(config.lease, settings.deadline)
        .map_err(|problem| std::io::Error::new(std::io::ErrorKind::InvalidInput, problem))
}

/// The OpenAPI document of this API, from the handlers below and the types they answer
/// with ([`api`]): it lives beside the handlers it lists.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Lookout",
        description = "The HTTP API of `lookout serve`: durable intake of product events, \
                       products and their services, tokens, deliveries (docs/SERVING.md). \
                       Every error answer is an `ApiError`."
    ),
    paths(
        post_product_event,
        post_event,
        post_batch,
        list_products,
        get_product,
        put_product,
        delete_product,
        enable_target,
        services,
        list_tokens,
        create_token,
        revoke_token,
        list_deliveries,
        get_delivery,
        redeliver,
        healthz,
        metrics,
        openapi_document,
        asyncapi_document,
    ),
    components(schemas(ApiError)),
    modifiers(&CommonAnswers),
    tags(
        (name = "events", description = "Handing events over"),
        (name = "products", description = "Which services a product's events go to"),
        (name = "tokens", description = "API tokens"),
        (name = "deliveries", description = "Deliveries and their attempts"),
        (name = "operations", description = "Health, metrics and these documents"),
    )
)]
struct ApiDoc;

/// The document, with this build's version.
fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = <ApiDoc as utoipa::OpenApi>::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document
}

/// The document as pretty JSON (what `lookout openapi` prints and the route serves).
pub fn openapi_json() -> String {
    let mut document = serde_json::to_value(openapi()).expect("the document serializes");
    api::name_times(&mut document);
    serde_json::to_string_pretty(&document).expect("JSON")
}
