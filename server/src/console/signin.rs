//! Signing in and out: the admin token's form, and a portal link opened.

use std::time::Duration;

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::auth::{self, ADMIN_SESSION, SESSION_COOKIE, SIGNIN_COOKIE, Scope};
use super::pages::{message, render, see_other, store_failed};
use super::{Console, Posted};
use crate::clients::ClientAddr;
use crate::store::{Millis, now_ms};

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage {
    nonce: String,
    problem: Option<&'static str>,
}

fn signin_page(headers: &HeaderMap, status: StatusCode, problem: Option<&'static str>) -> Response {
    let nonce = auth::random_token();
    let cookie = auth::set_cookie(SIGNIN_COOKIE, &nonce, Duration::from_secs(3600), headers);
    let mut response = render(status, &SignInPage { nonce, problem });
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

pub async fn signin_form(headers: HeaderMap) -> Response {
    signin_page(&headers, StatusCode::OK, None)
}

/// Signs in with the admin token (the one `serve` runs with). The form's nonce must
/// match its cookie: another site cannot sign a visitor in to its own session.
pub async fn signin(
    State(console): State<Console>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let fields: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let nonce_ok = auth::cookie(&headers, SIGNIN_COOKIE)
        .is_some_and(|cookie| !cookie.is_empty() && auth::same(cookie, field("nonce")));
    if !nonce_ok {
        return signin_page(
            &headers,
            StatusCode::FORBIDDEN,
            Some("The form expired; try again."),
        );
    }
    let client = client.map(|Extension(ClientAddr(address))| address);
    if let Some(wait) = client.and_then(|client| console.guesses.wait_for(client)) {
        let mut page = signin_page(
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many wrong tokens from this address: wait a minute, then try again."),
        );
        let seconds = crate::guessing::retry_after_seconds(wait);
        page.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        return page;
    }
    if !console.keys.is_admin_token(field("token").trim()) {
        if let Some(client) = client {
            console
                .guesses
                .failed(client, crate::guessing::Door::Console);
        }
        return signin_page(
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token."),
        );
    }
    let until = now_ms() + ADMIN_SESSION.as_millis() as Millis;
    start_session(&console, &headers, (&Scope::Admin, None), until).await
}

/// Starts a session (kept in the store), sets its cookie and sends the visitor home.
async fn start_session(
    console: &Console,
    headers: &HeaderMap,
    (scope, link): (&Scope, Option<&str>),
    until: Millis,
) -> Response {
    let store = console.store.as_ref();
    let started = auth::start_session(store, &console.keys, scope, link, until).await;
    let value = match started {
        Ok(Some(value)) => value,
        Ok(None) => return link_refused(),
        Err(err) => return store_failed(&err),
    };
    let lasts = Duration::from_millis(until.saturating_sub(now_ms()).max(0) as u64);
    let cookie = auth::set_cookie(SESSION_COOKIE, &value, lasts, headers);
    let mut response = render(StatusCode::OK, &SignedIn {});
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// After signing in: a page that moves on by itself. A redirect would do, but a link
/// opened from another site (a portal link in an e-mail) would then arrive without the
/// SameSite=Strict cookie just set.
#[derive(Template)]
#[template(path = "console/signed_in.html")]
struct SignedIn {}

/// Ends the session, in the store: its cookie opens nothing from now on, wherever a
/// copy of it is (a form, so that another site cannot sign a visitor out).
pub async fn signout(
    State(console): State<Console>,
    headers: HeaderMap,
    posted: Posted,
) -> Response {
    if let Err(err) = console.store.end_session(&posted.session.id).await {
        return store_failed(&err);
    }
    let cookie = auth::set_cookie(SESSION_COOKIE, "", Duration::ZERO, &headers);
    let mut response = see_other("/ui/signin".into());
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

#[derive(Deserialize)]
pub struct LinkQuery {
    id: String,
    sig: String,
}

/// A portal link (`lookout portal-link`, or `make demo`'s sign-in link): a session of
/// its scope until the link expires or is revoked.
pub async fn open_link(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(link): Query<LinkQuery>,
) -> Response {
    let store = console.store.as_ref();
    let checked = auth::check_link(
        store,
        &console.keys,
        (&link.id, &link.sig),
        console.max_link_ttl,
    );
    match checked.await {
        Ok(Some((scope, until))) => {
            start_session(&console, &headers, (&scope, Some(&link.id)), until).await
        }
        Ok(None) => link_refused(),
        Err(err) => store_failed(&err),
    }
}

/// The same answer for a forged, unknown, revoked, expired or too long link: the page
/// does not help anyone tell them apart.
fn link_refused() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "This link is not valid, has expired or was revoked. Ask for a new one.",
    )
}
