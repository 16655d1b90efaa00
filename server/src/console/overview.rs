//! A product's overview: its charts of the last hour and day, counts by status, and
//! the targets disabled (enabled again from here).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::Session;
use super::pages::{Chrome, Refused, render, see_other, visible_product};
use super::products::stored_service;
use super::{Console, Posted, chart};
use crate::store::{ActivityWindow, Millis, Status, now_ms};

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    product: String,
    hour: String,
    day: String,
    latency: String,
    p50: String,
    p99: String,
    queued: u64,
    dead: u64,
    by_status: Vec<(Status, u64)>,
    disabled: Vec<crate::store::DisabledTarget>,
}

const MINUTE: Millis = 60_000;
const QUARTER: Millis = 15 * MINUTE;

pub async fn overview(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &session, &id).await?;
    let now = now_ms();
    // Windows end with the current minute: an hour of minutes, a day of quarter hours.
    let end = now - now.rem_euclid(MINUTE) + MINUTE;
    let (hour_start, day_start) = (end - 60 * MINUTE, end - 96 * QUARTER);
    let window = ActivityWindow {
        since: day_start,
        durations_since: hour_start,
    };
    let activity = console.store.activity(&id, window).await?;
    let mut recent: Vec<u64> = activity
        .durations
        .iter()
        .filter(|(at, _)| *at >= hour_start)
        .map(|(_, d)| *d)
        .collect();
    let mut shown =
        |p| chart::percentile(&mut recent, p).map_or("–".to_owned(), |v| format!("{v} ms"));
    let (p50, p99) = (shown(50), shown(99));
    let count = |wanted: &dyn Fn(Status) -> bool| -> u64 {
        activity
            .by_status
            .iter()
            .filter(|(s, _)| wanted(*s))
            .map(|(_, n)| n)
            .sum()
    };
    let page = OverviewPage {
        chrome: Chrome::of(&session),
        hour: chart::outcomes(&activity, hour_start, MINUTE, 60),
        day: chart::outcomes(&activity, day_start, QUARTER, 96),
        latency: chart::latency(&activity, hour_start, MINUTE, 60),
        p50,
        p99,
        queued: count(&|s| s.is_queued()),
        dead: count(&|s| s == Status::Dead),
        by_status: activity.by_status.clone(),
        disabled: product.disabled,
        product: id,
    };
    Ok(render(StatusCode::OK, &page))
}

/// Enables again the targets of one configured service that answered 410 Gone (storing
/// the service again does that).
pub async fn reenable(
    State(console): State<Console>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, Refused> {
    let name = posted.field("instance").unwrap_or_default().to_owned();
    let (_, stored, _) = stored_service(&console, &posted.session, &id, &name).await?;
    console.store.put_instance(&id, &stored).await?;
    Ok(see_other(format!("/ui/products/{id}/overview")))
}
