//! The contracts: the OpenAPI document, declared beside the handlers it lists, and
//! the AsyncAPI one, both served without a token.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{admin, events, operations};
use crate::api::{self, ApiError, CommonAnswers};

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

/// The OpenAPI document of this API, from the handlers' own annotations (events.rs,
/// admin.rs, operations.rs and the two above) and the types they answer with ([`api`]).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Lookout",
        description = "The HTTP API of `lookout serve`: durable intake of product events, \
                       products and their services, tokens, deliveries (docs/SERVING.md). \
                       Every error answer is an `ApiError`."
    ),
    paths(
        events::post_product_event,
        events::post_event,
        events::post_batch,
        admin::list_products,
        admin::get_product,
        admin::put_product,
        admin::delete_product,
        admin::enable_target,
        admin::services,
        admin::list_tokens,
        admin::create_token,
        admin::revoke_token,
        admin::list_deliveries,
        admin::get_delivery,
        admin::redeliver,
        operations::healthz,
        operations::metrics,
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
