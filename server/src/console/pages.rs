//! What every console page shares: its frame, the message page, why a page is refused,
//! and the checks of who may see what. The pages themselves are one file per job:
//! signin.rs, catalogue.rs, products.rs, deliveries.rs, overview.rs (and preview.rs).

use std::time::Duration;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::Console;
use super::auth::{Scope, Session};
use crate::store::{Millis, Product, StoreError};
use lookout::config::check_name;

/// What every page's frame needs: the navigation a session may use, and the CSRF
/// token of its forms.
pub struct Chrome {
    pub admin: bool,
    pub csrf: String,
    /// The product a portal session is limited to (its only home).
    pub product: Option<String>,
}

impl Chrome {
    pub(super) fn of(session: &Session) -> Chrome {
        Chrome {
            admin: session.is_admin(),
            csrf: session.csrf.clone(),
            product: match &session.scope {
                Scope::Admin => None,
                Scope::Product(id) => Some(id.clone()),
            },
        }
    }
}

pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!("console template: {err}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage<'a> {
    status: u16,
    text: &'a str,
}

/// A page saying only `text` (errors, refusals).
pub fn message(status: StatusCode, text: &str) -> Response {
    let page = MessagePage {
        status: status.as_u16(),
        text,
    };
    render(status, &page)
}

/// Why a page is not shown to this session (made into a page at the end).
pub enum Refused {
    /// The session is limited to another product.
    NotYours,
    /// No such thing (what, in a sentence).
    Missing(&'static str),
    /// The store failed (logged when it happened).
    Store,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::NotYours => not_yours(),
            Refused::Missing(what) => message(StatusCode::NOT_FOUND, what),
            Refused::Store => message(
                StatusCode::SERVICE_UNAVAILABLE,
                "The store is not answering; try again.",
            ),
        }
    }
}

pub(super) fn store_refused(err: &StoreError) -> Refused {
    tracing::error!("console: store: {err}");
    Refused::Store
}

impl From<StoreError> for Refused {
    fn from(err: StoreError) -> Refused {
        store_refused(&err)
    }
}

pub(super) fn store_failed(err: &StoreError) -> Response {
    store_refused(err).into_response()
}

pub(super) fn not_yours() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "This session may not see that page: it is limited to one product.",
    )
}

/// A product's page is only for a session that may see it, and only if it exists.
pub(super) async fn visible_product(
    console: &Console,
    session: &Session,
    id: &str,
) -> Result<Product, Refused> {
    if !session.may_see(id) {
        return Err(Refused::NotYours);
    }
    if check_name(id).is_err() {
        return Err(Refused::Missing("No such product."));
    }
    match console.store.product(id).await {
        Ok(Some(product)) => Ok(product),
        Ok(None) => Err(Refused::Missing("No such product.")),
        Err(err) => Err(store_refused(&err)),
    }
}

pub(super) fn admin_only(session: &Session) -> Result<(), Refused> {
    if session.is_admin() {
        Ok(())
    } else {
        Err(Refused::NotYours)
    }
}

pub(super) fn see_other(to: String) -> Response {
    Redirect::to(&to).into_response()
}

pub async fn home(session: Session) -> Response {
    match &session.scope {
        Scope::Admin => see_other("/ui/products".into()),
        Scope::Product(id) => see_other(format!("/ui/products/{id}")),
    }
}

/// A stored time as people read it: UTC, to the millisecond.
pub fn when(at: &Millis) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis((*at).max(0) as u64);
    let shown = humantime::format_rfc3339_millis(time).to_string();
    shown.replacen('T', " ", 1).replace('Z', " UTC")
}
