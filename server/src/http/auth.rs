//! Who is calling: the bearer token of every `/v1` route, and the admin-only routes.

use std::time::Duration;

use axum::extract::{Extension, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::answer::{error, forbidden, store_error};
use super::app::App;
use crate::clients::ClientAddr;
use crate::guessing::{self, Door};
use crate::store::now_ms;
use crate::tokens::{self, Scope, Token};

/// Who is calling: the bootstrap token (`LOOKOUT_TOKEN`, admin) or a stored token that
/// has not expired. 401 for no token, an unknown one or an expired one; handlers read
/// the [`Token`] to say 403 to a token not allowed what it asks.
pub(super) async fn authorize(
    State(app): State<App>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(given) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return unauthorized("a bearer token is required");
    };
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0);
    if let Some(wait) = client.and_then(|client| app.guesses.wait_for(client)) {
        return too_many_wrong_tokens(wait);
    }
    let bootstrap = Sha256::digest(given.as_bytes()).ct_eq(&app.token_digest);
    let caller = if bool::from(bootstrap) {
        Token::bootstrap()
    } else {
        match app.store.token_by_digest(&tokens::digest(given)).await {
            Ok(Some(token)) if token.is_expired(now_ms()) => {
                return unauthorized("this token has expired");
            }
            Ok(Some(token)) => token,
            Ok(None) => {
                if let Some(client) = client {
                    app.guesses.failed(client, Door::Api);
                }
                return unauthorized("a valid bearer token is required");
            }
            Err(err) => return store_error(&err),
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// 429 for an address that has given too many wrong tokens lately.
fn too_many_wrong_tokens(wait: Duration) -> Response {
    let seconds = guessing::retry_after_seconds(wait);
    let message = format!("too many wrong tokens from this address: try again in {seconds} s");
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    response
}

fn unauthorized(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
    response
}

/// Products, tokens and everything but posting events: admin tokens only.
pub(super) async fn require_admin(
    Extension(caller): Extension<Token>,
    request: Request,
    next: Next,
) -> Response {
    if caller.scope != Scope::Admin {
        return forbidden("this token may only post events (scope ingest); this needs admin");
    }
    next.run(request).await
}
