//! The API contract: the OpenAPI 3.1 document of `serve`'s HTTP API (`GET
//! /v1/openapi.json`, `lookout openapi`). utoipa builds it from the handlers' own
//! annotations in [`intake`](crate::intake) and from the types they answer with, so the
//! document cannot drift from the code; the answers that are not stored types are
//! defined here. Every error answer, whichever layer refuses, is an [`ApiError`]
//! ([`json_errors`] turns the framework's plain-text refusals into one).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{self, RefOr};
use utoipa::{Modify, ToSchema};

use crate::store::NewDelivery;

/// Every error answer: what is wrong, for people. `path` names the payload's field at
/// fault (`attributes.title`); `problems` lists every invalid option of a product at once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
}

impl ApiError {
    pub fn new(message: impl Into<String>) -> ApiError {
        ApiError {
            error: message.into(),
            path: None,
            problems: None,
        }
    }

    /// The answer with `status`.
    pub fn response(self, status: StatusCode) -> Response {
        (status, axum::Json(self)).into_response()
    }
}

/// One delivery made for an accepted event: its id is the `webhook-id` of every attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryRef {
    pub id: String,
    /// The configured service (the product's name for it).
    pub instance: String,
    /// The service it is (`webhook`, `slack`…).
    pub service: String,
}

impl From<&NewDelivery> for DeliveryRef {
    fn from(delivery: &NewDelivery) -> Self {
        DeliveryRef {
            id: delivery.id.clone(),
            instance: delivery.instance.clone(),
            service: delivery.service.clone(),
        }
    }
}

/// `202`: the event and its deliveries are stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// `evt_…`
    pub id: String,
    /// One per enabled service that listens to this kind of event.
    pub deliveries: Vec<DeliveryRef>,
}

/// What the intake said about one event of a batch: accepted, or refused.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Verdict {
    Accepted(Accepted),
    Refused(ApiError),
}

/// One event's result in a batch: the status a single POST would have got, and its body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchResult {
    /// `202`, `400`, `403`, `404`, `409` or `503`.
    pub status: u16,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The first answer to this idempotency key, again: nothing new was stored.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// `200` to a batch: each event's result, in the order of the events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchAnswer {
    pub accepted: usize,
    pub refused: usize,
    pub results: Vec<BatchResult>,
}

/// `201`: the new token, with its secret shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub listed: crate::tokens::Token,
    /// The bearer token itself: not stored (only its SHA-256), never shown again.
    pub token: String,
}

/// One delivery with every attempt, and why it is waiting if it is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryDetail {
    pub delivery: crate::store::DeliveryRow,
    pub attempts: Vec<crate::store::AttemptRecord>,
    pub waiting: Option<crate::lanes::Waiting>,
    /// The deliveries whose events this one carries: those it superseded (coalescing),
    /// or the events of a digest. Left out when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<crate::store::DeliveryRow>,
}

/// The name of the bearer-token security scheme in the document.
pub const BEARER: &str = "bearer";

/// The AsyncAPI document of webhook deliveries, with this build's version.
pub fn asyncapi() -> serde_json::Value {
    lookout::schemas::asyncapi(env!("CARGO_PKG_VERSION"))
}

/// Where utoipa puts a schema the document refers to by name.
const COMPONENTS: &str = "#/components/schemas/";

/// Times are [`Millis`](crate::clock::Millis), an alias of `i64` that utoipa can only
/// name after the primitive: a generated client would get a type called `i64`. Renames
/// that component `Millis`, and the references to it.
pub fn name_times(document: &mut serde_json::Value) {
    let schemas = &mut document["components"]["schemas"];
    let Some(mut millis) = schemas.as_object_mut().and_then(|s| s.remove("i64")) else {
        return;
    };
    millis["description"] = "Milliseconds since the Unix epoch".into();
    schemas["Millis"] = millis;
    rename_refs(
        document,
        &format!("{COMPONENTS}i64"),
        &format!("{COMPONENTS}Millis"),
    );
}

fn rename_refs(value: &mut serde_json::Value, from: &str, to: &str) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                if key == "$ref" && field == from {
                    *field = to.into();
                } else {
                    rename_refs(field, from, to);
                }
            }
        }
        serde_json::Value::Array(items) => {
            items
                .iter_mut()
                .for_each(|item| rename_refs(item, from, to));
        }
        _ => {}
    }
}

/// Adds what every operation can answer without its handler being asked, each as an
/// [`ApiError`]: refusals of the request path (`429`: too many requests from one client;
/// `408`/`413`: a body too slow or too large), of the token (`401`), and a store that
/// does not answer (`503`). Declared once here rather than on each handler.
pub struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, document: &mut openapi::OpenApi) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for item in document.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                add_common_answers(operation);
            }
        }
    }
}

fn add_common_answers(operation: &mut openapi::path::Operation) {
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = operation.request_body.is_some();
    let common = [
        (
            401,
            secured,
            "No bearer token, or an unknown, revoked or expired one",
        ),
        (
            408,
            has_body,
            "The body did not arrive in time (`--body-timeout`)",
        ),
        (413, has_body, "The body is larger than `--max-body`"),
        (429, true, "Too many requests in flight from this client"),
        (
            503,
            true,
            "The store did not answer: nothing was changed, try again",
        ),
    ];
    for (status, applies, description) in common {
        let status = status.to_string();
        if applies && !operation.responses.responses.contains_key(&status) {
            operation
                .responses
                .responses
                .insert(status, RefOr::T(error_answer(description)));
        }
    }
}

/// An answer whose body is an [`ApiError`].
pub fn error_answer(description: &str) -> openapi::Response {
    let content = openapi::ContentBuilder::new()
        .schema(Some(openapi::Ref::from_schema_name("ApiError")))
        .build();
    openapi::ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build()
}

/// Longest framework refusal text kept in the JSON error (they are one line).
const MAX_REFUSAL_TEXT: usize = 4096;

/// Makes every error answer of the API an [`ApiError`]: the framework's own refusals
/// (a query or path that does not parse, a method a route does not take) come as plain
/// text or empty, and a client of the contract must not have to tell them apart. The
/// console (`/ui`) keeps its own pages.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let console = request.uri().path().starts_with("/ui");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if console || is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REFUSAL_TEXT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase()
    } else {
        text
    };
    let body = serde_json::to_vec(&ApiError::new(message)).expect("serializes");
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}
