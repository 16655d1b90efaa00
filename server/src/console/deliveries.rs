//! A product's deliveries, one delivery with its attempts, and redelivery.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Session;
use super::pages::{Chrome, Refused, render, see_other, store_failed, visible_product};
use super::{Console, Posted};
use crate::lanes::Waiting;
use crate::store::{AttemptRecord, DeliveryFilter, DeliveryRow, Millis, Product, Status, now_ms};

/// Rows per page of the deliveries list.
const PAGE: usize = 50;

#[derive(Deserialize, Default)]
pub struct DeliveriesQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    service: String,
    /// How far back: `1h`, `2d` (empty: all).
    #[serde(default)]
    since: String,
    /// The keyset cursor: `UPDATED_AT~ID` of the last row of the previous page.
    #[serde(default)]
    after: String,
}

#[derive(Template)]
#[template(path = "console/deliveries.html")]
struct DeliveriesPage {
    chrome: Chrome,
    product: String,
    rows: Vec<DeliveryRow>,
    statuses: [Status; Status::ALL.len()],
    services: Vec<String>,
    query: DeliveriesQuery,
    /// The query string of the next page, if there may be one.
    next: Option<String>,
    problem: Option<String>,
    notice: Option<String>,
}

pub async fn deliveries(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &session, &id).await?;
    Ok(deliveries_page(&console, &session, product, query, None).await)
}

async fn deliveries_page(
    console: &Console,
    session: &Session,
    product: Product,
    query: DeliveriesQuery,
    notice: Option<String>,
) -> Response {
    let (filter, problem) = match delivery_filter(&product.id, &query) {
        Ok(filter) => (filter, None),
        Err(problem) => (DeliveryFilter::default(), Some(problem)),
    };
    let rows = if problem.is_some() {
        Vec::new()
    } else {
        match console.store.deliveries(&filter).await {
            Ok(rows) => rows,
            Err(err) => return store_failed(&err),
        }
    };
    let next = (rows.len() == PAGE).then(|| next_page(&query, rows.last()));
    let page = DeliveriesPage {
        chrome: Chrome::of(session),
        product: product.id,
        rows,
        statuses: Status::ALL,
        services: product
            .instances
            .iter()
            .map(|i| i.service.clone())
            .collect(),
        query,
        next: next.flatten(),
        problem,
        notice,
    };
    render(StatusCode::OK, &page)
}

fn delivery_filter(product: &str, query: &DeliveriesQuery) -> Result<DeliveryFilter, String> {
    let status = match query.status.as_str() {
        "" => None,
        given => Some(given.parse::<Status>()?),
    };
    let after = match query.after.split_once('~') {
        Some((at, id)) => Some((at.parse().map_err(|_| "a bad page cursor")?, id.to_owned())),
        None => None,
    };
    Ok(DeliveryFilter {
        status,
        service: Some(query.service.clone()).filter(|s| !s.is_empty()),
        product: Some(product.to_owned()),
        updated_since: since(&query.since)?,
        limit: PAGE,
        after,
    })
}

/// `1h` → the time one hour ago; empty → none.
fn since(text: &str) -> Result<Option<Millis>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let ago = humantime::parse_duration(text.trim())
        .map_err(|err| format!("since: {err} (write e.g. 30m, 2h, 7d)"))?;
    Ok(Some(now_ms() - crate::store::millis(ago)))
}

fn next_page(query: &DeliveriesQuery, last: Option<&DeliveryRow>) -> Option<String> {
    let last = last?;
    let cursor = format!("{}~{}", last.updated_at, last.id);
    Some(
        form_urlencoded::Serializer::new(String::new())
            .append_pair("status", &query.status)
            .append_pair("service", &query.service)
            .append_pair("since", &query.since)
            .append_pair("after", &cursor)
            .finish(),
    )
}

#[derive(Template)]
#[template(path = "console/delivery.html")]
struct DeliveryPage {
    chrome: Chrome,
    product: String,
    row: DeliveryRow,
    attempts: Vec<AttemptRecord>,
    payload: String,
    /// Why it is not being attempted right now, in words (queued ones only).
    waiting: Option<String>,
    /// The delivery of its order key it is held behind.
    behind: Option<String>,
    /// The deliveries whose events it carries (it superseded them, or it is their
    /// digest).
    replaces: Vec<DeliveryRow>,
}

/// How much of the event's payload a delivery's page shows.
const PAYLOAD_SHOWN: usize = 8 * 1024;

/// Delivery `delivery` with its attempts, if it is one of `product`'s and the session
/// may see that product.
async fn delivery_of(
    console: &Console,
    session: &Session,
    product: &str,
    delivery: &str,
) -> Result<(DeliveryRow, Vec<AttemptRecord>), Refused> {
    if !session.may_see(product) {
        return Err(Refused::NotYours);
    }
    match console.store.delivery(delivery).await? {
        Some(found) if found.0.product == product => Ok(found),
        _ => Err(Refused::Missing("No such delivery in this product.")),
    }
}

pub async fn delivery(
    State(console): State<Console>,
    session: Session,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, Refused> {
    let (row, attempts) = delivery_of(&console, &session, &id, &delivery).await?;
    let payload = console.store.event_payload(&row.event_id).await?;
    let payload = shown_payload(payload.as_deref().unwrap_or_default());
    let now = now_ms();
    let waiting = console.store.waiting(&row.id, now).await?;
    let behind = match &waiting {
        Some(Waiting::Held { behind }) => behind.clone(),
        _ => None,
    };
    let replaces = console.store.shaped_into(&row.id).await?;
    let page = DeliveryPage {
        chrome: Chrome::of(&session),
        product: id,
        row,
        attempts,
        payload,
        waiting: waiting.map(|w| w.describe(now)),
        behind,
        replaces,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The payload indented, cut to [`PAYLOAD_SHOWN`] bytes.
fn shown_payload(payload: &str) -> String {
    let pretty = serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_owned());
    if pretty.len() <= PAYLOAD_SHOWN {
        return pretty;
    }
    let mut end = PAYLOAD_SHOWN;
    while !pretty.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n…", &pretty[..end])
}

pub async fn redeliver(
    State(console): State<Console>,
    Path((id, delivery)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, Refused> {
    delivery_of(&console, &posted.session, &id, &delivery).await?;
    console.store.redeliver(&delivery, now_ms()).await?;
    console.wake.notify_one();
    Ok(see_other(format!(
        "/ui/products/{id}/deliveries/{delivery}"
    )))
}

/// Makes every dead delivery of the product (within `since`, if given) due again.
pub async fn redeliver_dead(
    State(console): State<Console>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &posted.session, &id).await?;
    let given = posted.field("since").unwrap_or_default();
    let query = DeliveriesQuery {
        since: given.to_owned(),
        ..DeliveriesQuery::default()
    };
    let filter = match since(given) {
        Ok(updated_since) => DeliveryFilter {
            status: Some(Status::Dead),
            product: Some(id.clone()),
            updated_since,
            ..DeliveryFilter::default()
        },
        Err(problem) => {
            return Ok(
                deliveries_page(&console, &posted.session, product, query, Some(problem)).await,
            );
        }
    };
    let dead = console.store.deliveries(&filter).await?;
    let now = now_ms();
    for row in &dead {
        console.store.redeliver(&row.id, now).await?;
    }
    console.wake.notify_one();
    let notice = format!("{} dead delivery(ies) are due again.", dead.len());
    Ok(deliveries_page(&console, &posted.session, product, query, Some(notice)).await)
}
