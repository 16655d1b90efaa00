//! What the API answers: the JSON error of every route, and one event's answer (alone
//! the response, in a batch one result).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::{Accepted, ApiError, BatchResult, Verdict};
use crate::store;

/// A JSON error body: `{"error": "…"}` ([`ApiError`]).
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    ApiError::new(message).response(status)
}

pub(super) fn forbidden(message: impl Into<String>) -> Response {
    error(StatusCode::FORBIDDEN, message)
}

/// What the intake says about one event: alone, the response; in a batch, one result.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) verdict: Verdict,
    /// The first answer again (a repeated idempotency key).
    pub(super) replayed: bool,
}

impl Answer {
    pub(super) fn accepted(accepted: Accepted, replayed: bool) -> Answer {
        Answer {
            status: StatusCode::ACCEPTED,
            verdict: Verdict::Accepted(accepted),
            replayed,
        }
    }

    pub(super) fn problem(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer::refused(status, ApiError::new(message))
    }

    pub(super) fn refused(status: StatusCode, error: ApiError) -> Answer {
        Answer {
            status,
            verdict: Verdict::Refused(error),
            replayed: false,
        }
    }

    /// 503: nothing was stored; the sender should try again.
    pub(super) fn unavailable(err: &store::StoreError) -> Answer {
        tracing::error!("store: {err}");
        Answer::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not answering; try again",
        )
    }

    pub(super) fn into_response(self) -> Response {
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
    pub(super) fn into_result(self) -> BatchResult {
        BatchResult {
            status: self.status.as_u16(),
            verdict: self.verdict,
            replayed: self.replayed,
        }
    }
}

pub(super) fn store_error(err: &store::StoreError) -> Response {
    Answer::unavailable(err).into_response()
}
