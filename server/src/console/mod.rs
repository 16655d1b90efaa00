//! The web console of `lookout serve`, at `/ui`: the catalogue with its install docs,
//! each product's services (added and edited through forms generated from the option
//! schemas), test sends, deliveries with their attempts, redelivery, an overview, and a
//! preview of what a change to the services would send ([`preview`]).
//!
//! Server-rendered HTML (askama templates in `server/templates/console`, escaped by
//! default); every page works without JavaScript and none is served. Every answer
//! carries a strict Content-Security-Policy: only this server's stylesheet, no script.
//! Who may see what is in [`auth`]: an admin session sees everything, a portal link's
//! session one product's pages only.

mod auth;
mod catalogue;
mod chart;
mod deliveries;
mod form;
mod overview;
mod pages;
mod preview;
mod preview_table;
mod products;
mod signin;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;

pub use auth::{Keys, LinkError, MAX_LINK_TTL, Scope, check_link_ttl, create_link, start_session};
use auth::{Session, SignInFirst};
use lookout::delivery::Transport;
use lookout::delivery::ssrf::Guard;
pub use preview::{PreviewLimits, Previews};

use crate::store::Store;

/// What the console's pages need.
#[derive(Clone)]
pub struct Console {
    pub store: Arc<dyn Store>,
    /// Wakes the workers after a redelivery.
    pub wake: Arc<Notify>,
    /// The workers' SSRF guard: a form naming a target they will refuse is refused.
    pub guard: Guard,
    /// Test sends go through the engine with the server's settings.
    pub transport: Transport,
    /// The products' services, resolved once per change (shared with the intake and
    /// the workers).
    pub routes: Arc<crate::routing::RouteCache>,
    pub keys: Keys,
    /// The previews running, and their limits.
    pub previews: Arc<Previews>,
    /// Wrong tokens per client address, shared with the API: sign-ins are throttled too.
    pub guesses: Arc<crate::guessing::Guesses>,
    /// A portal link lasting longer than this is refused when opened.
    pub max_link_ttl: std::time::Duration,
}

/// The console's routes, under `/ui`.
pub fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/console.css", get(stylesheet))
        .route("/signin", get(signin::signin_form).post(signin::signin))
        .route("/signout", post(signin::signout))
        .route("/link", get(signin::open_link))
        .route("/catalogue", get(catalogue::catalogue))
        .route(
            "/products",
            get(products::products).post(products::create_product),
        )
        .route("/products/{product}", get(products::product))
        .route(
            "/products/{product}/services",
            get(products::add_form).post(products::add_service),
        )
        .route(
            "/products/{product}/services/{name}",
            get(products::edit_form).post(products::edit_service),
        )
        .route(
            "/products/{product}/services/{name}/switch",
            post(products::switch_service),
        )
        .route(
            "/products/{product}/services/{name}/remove",
            post(products::remove_service),
        )
        .route(
            "/products/{product}/services/{name}/test",
            post(products::test_service),
        )
        .route(
            "/products/{product}/deliveries",
            get(deliveries::deliveries),
        )
        .route(
            "/products/{product}/deliveries/{id}",
            get(deliveries::delivery),
        )
        .route(
            "/products/{product}/deliveries/{id}/redeliver",
            post(deliveries::redeliver),
        )
        .route(
            "/products/{product}/redeliver-dead",
            post(deliveries::redeliver_dead),
        )
        .route("/products/{product}/overview", get(overview::overview))
        .route(
            "/products/{product}/preview",
            get(preview::form)
                .post(preview::run)
                .layer(DefaultBodyLimit::max(preview::MAX_FORM)),
        )
        .route("/products/{product}/reenable", post(overview::reenable))
        .fallback(|| async { pages::message(StatusCode::NOT_FOUND, "No such page.") })
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

/// The policy every answer of the console carries: nothing but this server's own
/// stylesheet and images; no script at all, no framing, forms only to here.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("console.css"),
    )
        .into_response()
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/ui/signin").into_response()
    }
}

/// A state-changing form: a session and the form's fields, its CSRF token checked.
/// Anything else is refused with 403 before the handler runs.
pub struct Posted {
    pub session: Session,
    pub fields: Vec<(String, String)>,
}

impl Posted {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FromRequest<Console> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Console) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session = <Session as axum::extract::FromRequestParts<Console>>::from_request_parts(
            &mut parts, console,
        )
        .await
        .map_err(IntoResponse::into_response)?;
        let request = Request::from_parts(parts, body);
        let bytes = axum::body::Bytes::from_request(request, console)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => pages::message(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "This form is larger than the page accepts. Go back and send less.",
                ),
                _ => rejection.into_response(),
            })?;
        let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        let posted = Posted { session, fields };
        let given = posted.field("csrf").unwrap_or_default();
        if !posted.session.csrf_matches(given) {
            return Err(pages::message(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from the console (no valid CSRF token). \
                 Go back, reload the page and try again.",
            ));
        }
        Ok(posted)
    }
}
