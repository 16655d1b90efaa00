//! `POST /v1/events`, `/v1/products/{id}/events` and `/v1/events/batch`: an event is
//! parsed, routed and stored with its deliveries, and answered 202 once committed.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::answer::{Answer, error};
use super::app::App;
use crate::api::{Accepted, ApiError, BatchAnswer, BatchResult};
use crate::routing::Routes;
use crate::store::{self, Admission, IdempotencyKey, NewEvent, millis, now_ms};
use crate::tokens::Token;
use lookout::config::check_name;
use lookout::payload::{Event, PayloadError};
use lookout::telemetry;
use tracing::Instrument as _;

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

/// Declares a route that takes one event: the two differ only in where the product is
/// named (the query or the path), so what they answer is documented once.
macro_rules! one_event_route {
    (
        $name:ident, $path:literal, params($($params:tt)*),
        $extract:ident($bound:ident): $extracted:ty => $product:expr
    ) => {
        #[utoipa::path(post, path = $path, tag = "events", security(("bearer" = [])),
            params($($params)*, ("Idempotency-Key" = Option<String>, Header, description = "Makes a repeated POST get the first answer (1 to 255 characters)", min_length = 1, max_length = 255)),
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
        pub(crate) async fn $name(
            State(app): State<App>,
            Extension(caller): Extension<Token>,
            $extract($bound): $extracted,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            let span = intake_span($path, &headers);
            traced(&span, intake(&app, &caller, $product, &headers, body)).await
        }
    };
}

one_event_route!(post_event, "/v1/events", params(EventQuery),
    Query(query): Query<EventQuery> => query.product);

one_event_route!(post_product_event, "/v1/products/{id}/events",
    params(("id" = String, Path, description = "The product: 1 to 64 letters, digits, `-`, `_` or `.`", pattern = r"^[A-Za-z0-9._-]{1,64}$")),
    Path(product): Path<String> => Some(product));

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
    match read_event(headers, body) {
        Ok((text, key)) => admit(app, caller, product, text, key).await.into_response(),
        Err((status, problem)) => error(status, problem),
    }
}

/// The event's JSON and its idempotency key, or why the request is refused.
fn read_event(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(String, Option<String>), (StatusCode, String)> {
    let bad_request = |problem| (StatusCode::BAD_REQUEST, problem);
    let body = body.map_err(|rejection| (rejection.status(), rejection.body_text()))?;
    let text = payload_text(headers, &body).map_err(bad_request)?;
    let key = header_key(headers).map_err(bad_request)?;
    Ok((text, key))
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
