//! The admin API: products and their services, the catalogue, tokens and deliveries.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::answer::{error, store_error};
use super::app::App;
use crate::api::{self, ApiError};
use crate::store::upkeep::InstanceKey;
use crate::store::{self, DeliveryFilter, now_ms};
use crate::tokens::{self, Scope};
use lookout::config::check_name;

#[utoipa::path(get, path = "/v1/services", tag = "products", security(("bearer" = [])),
    responses(
        (status = 200, description = "The catalogue: every service, its events and options", body = Vec<lookout::service::ServiceSummary>),
    )
)]
pub(crate) async fn services() -> Response {
    let all: Vec<_> = lookout::catalogue().iter().map(|r| r.summary()).collect();
    axum::Json(all).into_response()
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
        (status = 200, description = "The product: its services as `PUT` takes them (options, `events`, lanes, `fallback`, `coalesce`, `digest`), secrets redacted, and disabled targets", body = store::ProductView),
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
    /// As `GET` answers it, so that its answer can be written back: the product's id
    /// (when given, the one in the path).
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    id: Option<String>,
    /// As `GET` answers it; read only, not changed here (`POST
    /// /v1/products/{id}/services/{name}/enable` enables a target again).
    #[serde(default, rename = "disabled_targets")]
    #[schema(value_type = Option<Vec<Object>>)]
    _disabled_targets: Option<Vec<Map<String, Value>>>,
}

/// Replaces a product's services: `{"services": {NAME: {"service": …, options…}}}`, the
/// shape of the config file's `[services]` tables. A value written as `GET` shows it
/// redacted keeps the stored one (same name and service, destination unchanged), so
/// `GET`'s answer, edited, can be written back.
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
    if parsed.id.as_ref().is_some_and(|named| *named != id) {
        let problem = format!("id: not the product in the path, `{id}`");
        return error(StatusCode::BAD_REQUEST, problem);
    }
    let refused = |problems: Vec<lookout::options::OptionProblem>| {
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let mut error = ApiError::new(shown.join("; "));
        error.problems = Some(shown);
        error.response(StatusCode::BAD_REQUEST)
    };
    let mut services = parsed.services;
    match app.store.product(&id).await {
        Ok(Some(stored)) => {
            let problems = keep_redacted(&mut services, &stored);
            if !problems.is_empty() {
                return refused(problems);
            }
        }
        Ok(None) => {}
        Err(err) => return store_error(&err),
    }
    let instances = match store::product_from_table(&services) {
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

/// The stored values a written table repeats redacted, as `GET` shows them, put back
/// ([`store::StoredInstance::keep_redacted`]): a product read and written back keeps
/// its secrets. The problems: secrets repeated for a destination that changed.
fn keep_redacted(
    services: &mut Map<String, Value>,
    stored: &store::Product,
) -> Vec<lookout::options::OptionProblem> {
    let mut problems = Vec::new();
    for (name, table) in services.iter_mut() {
        let previous = stored.instances.iter().find(|i| &i.name == name);
        if let (Some(previous), Value::Object(table)) = (previous, table) {
            problems.extend(previous.keep_redacted(table));
        }
    }
    problems
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
        .enable_targets(
            InstanceKey {
                product: &id,
                instance: &name,
            },
            asked.redeliver.then(now_ms),
        )
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
