//! `/healthz` and `/metrics`: what a supervisor and a scraper ask, no token.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::answer::error;
use super::app::App;
use crate::api::ApiError;
use crate::metrics::Metrics;
use crate::store::{self, Store, now_ms};

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
pub(super) async fn render_health(store: &dyn Store) -> Response {
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
pub(super) async fn render_metrics(store: &dyn Store, metrics: &Metrics) -> Response {
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
